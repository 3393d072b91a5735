"""Device endpoints: the catalogue of video processors for device masks (jobs.device_catalogue),
with their image areas and text fields; users add and delete their own."""

from __future__ import annotations

import asyncio

from aiohttp import web

from jobs.device_catalogue import parse_device
from server.json_body import read_json
from server.keys import DEVICES

routes = web.RouteTableDef()


@routes.get("/api/devices/")
async def list_devices(request: web.Request) -> web.Response:
    """Every device, built in or added, with its image area and text fields on its own frame."""
    devices = request.app[DEVICES].all()
    return web.json_response({"devices": [device.to_json() for device in devices]})


@routes.get("/api/devices/{name}")
async def get_device(request: web.Request) -> web.Response:
    """One device; 404 ``device_not_found``."""
    device = request.app[DEVICES].get(request.match_info["name"])
    return web.json_response(device.to_json())


@routes.post("/api/devices/")
async def add_device(request: web.Request) -> web.Response:
    """Add a device (validated; 409 ``device_exists`` if the name is taken); 201. It is
    written and synced to disk off the event loop."""
    device = parse_device(await read_json(request))
    await asyncio.to_thread(request.app[DEVICES].add, device)
    location = f"/api/devices/{device.name}"
    return web.json_response(device.to_json(), status=201, headers={"Location": location})


@routes.delete("/api/devices/{name}")
async def delete_device(request: web.Request) -> web.Response:
    """Delete a device added through the API; 204. A built-in one is 409 ``builtin_device``."""
    await asyncio.to_thread(request.app[DEVICES].remove, request.match_info["name"])
    return web.Response(status=204)
