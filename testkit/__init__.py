"""What the tests and the benchmarks share: synthetic media (numbered clips, scripted endoscopy
recordings with ground truth) and a Server-Sent Events reader. Not part of the installed
product; importable from the repository root, where tests and bench run."""
