"""Code run in a notebook session's kernel over Jupyter's WebSocket protocol, as JupyterLab runs a cell."""

from __future__ import annotations

import json
import uuid

from websockets.sync.client import connect


def execute(ws_url: str, code: str) -> str:
    """Run code in a kernel over Jupyter's WebSocket protocol; returns what it printed or returned."""
    with connect(ws_url, open_timeout=10) as ws:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": msg_id,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        output = []
        while True:
            message = json.loads(ws.recv(timeout=30))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output.append(message["content"]["text"])
            elif kind == "execute_result":
                output.append(message["content"]["data"]["text/plain"])
            elif kind == "error":
                raise AssertionError(message["content"]["evalue"])
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return "".join(output)
