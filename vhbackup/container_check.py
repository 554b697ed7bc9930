"""What ``config check`` says about containers: do the named containers, compose services and volumes exist?

Each problem is one warning line. When the engine does not answer (its
daemon or API service is not running), that is the one warning: nothing
else can be checked then.
"""

from __future__ import annotations

from vhbackup import containers
from vhbackup.errors import VhError
from vhbackup.policy import Policy, Service


def describe_service(svc: Service) -> list[str]:
    parts = []
    boxes = [*svc.containers, *(f"{p}/{s}" for p, s in svc.compose)]
    if boxes:
        parts.append(("stops containers " if svc.stop else "containers ") + ", ".join(boxes))
    if svc.volumes:
        parts.append("volumes " + ", ".join(svc.volumes))
    return parts


def problems(policy: Policy) -> list[str]:
    refs: list[tuple[str, containers.Ref]] = []
    volumes: list[tuple[str, str]] = []
    for svc in policy.services:
        refs += [(f"service {svc.name}", containers.Ref(name=c)) for c in svc.containers]
        refs += [(f"service {svc.name}", containers.Ref(project=p, service=s)) for p, s in svc.compose]
        volumes += [(svc.name, v) for v in svc.volumes]
    for db in policy.databases:
        if db.container:
            refs.append((f"database {db.name}", containers.Ref(name=db.container)))
        elif db.compose:
            refs.append((f"database {db.name}", containers.Ref(project=db.compose[0], service=db.compose[1])))
    if not refs and not volumes:
        return []
    try:
        engine = containers.detect(policy.container_engine)
    except VhError as exc:
        return [str(exc)]
    why = containers.answers(engine)
    if why is not None:
        return [f"the container engine ({engine}) does not answer, so containers and volumes were not checked: {why}"]
    found = []
    for owner, ref in refs:
        try:
            boxes = containers.resolve(engine, [ref])
        except VhError as exc:
            found.append(f"{owner}: {exc}")
            continue
        if owner.startswith("database") and not any(b.running for b in boxes):
            found.append(f"{owner}: container {boxes[0].name} is not running: its dump would fail")
    for owner, volume in volumes:
        try:
            if containers.volume_path(engine, volume) is None:
                found.append(f"service {owner}: volume {volume} does not exist ({engine}); a backup now would fail")
        except VhError as exc:
            found.append(f"service {owner}: {exc}")
    return found
