"""Small sessions for tests that need sessions of several users but not what runs in them: headless jobs that
sleep (no readiness probe, no JupyterLab), launched as each person through the API."""

from __future__ import annotations

import time

import httpx

from tests.instance import Instance, Person

IMAGE = "skaha-emulator/notebook:latest"  # here only for its `sleep`: a job runs no JupyterLab


def api(instance: Instance, token: str | None) -> httpx.Client:
    """skaha's v1 API as the token's user (no token: as nobody)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{instance.url}/skaha/v1", headers=headers, timeout=30)


def sleeping_jobs(instance: Instance, people: dict[str, Person], wanted: dict[str, int]) -> dict[str, list[str]]:
    """`wanted[name]` jobs of each person that sleep ten minutes, launched together and all Running; their ids
    by person (named `<person>-job<n>`)."""
    launched: dict[str, list[str]] = {}
    for name, count in wanted.items():
        client = api(instance, people[name].token)
        for n in range(count):
            data = {"name": f"{name}-job{n}", "image": IMAGE, "type": "headless", "cmd": "sleep", "args": "600"}
            answer = client.post("/session", data=data)
            assert answer.status_code == 200, answer.text
            launched.setdefault(name, []).append(answer.text.strip())
    deadline = time.monotonic() + 120
    for name, ids in launched.items():
        client = api(instance, people[name].token)
        for session_id in ids:
            while client.get(f"/session/{session_id}").json()["status"] != "Running":
                assert time.monotonic() < deadline, instance.service_logs()
                time.sleep(0.1)
    return launched


def delete_jobs(instance: Instance, people: dict[str, Person], launched: dict[str, list[str]]) -> None:
    """Each person's jobs deleted by them (those already gone answer 404)."""
    for name, ids in launched.items():
        client = api(instance, people[name].token)
        for session_id in ids:
            client.delete(f"/session/{session_id}")
