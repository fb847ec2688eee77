"""A connection to a labgrid coordinator through labgrid's Python API (`labgrid.remote.client.ClientSession`).

labgrid's session is asyncio; formicary is synchronous. The session lives on an event loop in a daemon thread
for the lifetime of a `LabClient` (the coordinator's stream keeps answering keep-alives while a bench runs),
and every call is a coroutine submitted to that loop. One connection costs ~0.1 s, not the ~2 s of a
`labgrid-client` process.

gRPC's asyncio support misbehaves with a second stream from one process ("Internal error from Core"), so the
LabClients of a process share one loop thread and one session per coordinator, counted by reference (a fleet
worker holds its place with one client while the bench opens another).

Who holds a place: labgrid records the acquirer as `host/user` (LG_HOSTNAME / LG_USERNAME override them). To
tell a live holder from a stale one (a client killed hard never releases), formicary also writes a small
record per acquired place on this machine (pid, since); a place held by this host/user whose recorded process
is gone is reported as stale, with the command that releases it. Nobody's lock is ever taken over unless the
caller asks (`steal=True`).
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError
from formicary.lab import require_labgrid
from formicary.lab.placeref import normalize_coordinator

Event = dict[str, Any]
CALL_TIMEOUT_S = 15.0
POLL_S = 0.25
SERIAL_CLASSES = ("NetworkSerialPort",)
FLASHER_CLASS = "FormicaryQemuFlasher"   # exported by `formicary lab export` for virtual boards


@dataclass(frozen=True)
class ResourceInfo:
    exporter: str
    group: str
    cls: str
    name: str
    params: dict[str, Any]
    avail: bool

    @property
    def path(self) -> str:
        return f"{self.exporter}/{self.group}/{self.cls}/{self.name}"


@dataclass(frozen=True)
class PlaceInfo:
    name: str
    tags: dict[str, str]
    acquired: str | None          # "host/user" of the holder
    reservation: str | None
    comment: str
    matches: tuple[str, ...]
    resources: tuple[ResourceInfo, ...] = field(default_factory=tuple)

    @property
    def board(self) -> str | None:
        """The formicary board named by the place's `board` tag (underscores read as dashes)."""
        b = self.tags.get("board")
        return b.replace("_", "-") if b else None

    @property
    def lab_hosts(self) -> tuple[str, ...]:
        return tuple(sorted({r.exporter for r in self.resources}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": dict(self.tags), "acquired": self.acquired,
                "reservation": self.reservation, "comment": self.comment, "matches": list(self.matches),
                "board": self.board, "lab_hosts": list(self.lab_hosts),
                "resources": [{"path": r.path, "params": r.params, "avail": r.avail} for r in self.resources]}


def records_dir() -> Path:
    base = os.environ.get("FORMICARY_CACHE_DIR")
    if base:
        return Path(base) / "lab" / "acquired"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("formicary")) / "lab" / "acquired"


def _record_path(coordinator: str, place: str) -> Path:
    safe = f"{coordinator}__{place}".replace("/", "%").replace(":", "_")
    return records_dir() / f"{safe}.json"


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()
_SESSIONS: dict[str, list[Any]] = {}   # coordinator -> [session, users]


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="formicary-labgrid", daemon=True).start()
        return _LOOP


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LabClient:
    """A session with one coordinator. Use as a context manager, or call `close()`."""

    def __init__(self, coordinator: str, *, connect_timeout: float = 10.0) -> None:
        require_labgrid("talking to a labgrid coordinator")
        self.coordinator = normalize_coordinator(coordinator)
        self._loop = _shared_loop()
        self.session: Any = None
        with _LOOP_LOCK:
            shared = _SESSIONS.get(self.coordinator)
            if shared is not None and not shared[0].stopping.is_set():
                shared[1] += 1
                self.session = shared[0]
                return
        try:
            self.session = self._call(self._start(), timeout=connect_timeout)
            with _LOOP_LOCK:
                _SESSIONS[self.coordinator] = [self.session, 1]
        except BaseException as exc:
            if isinstance(exc, FormicaryError):
                raise
            raise FormicaryError(f"cannot reach the labgrid coordinator at {self.coordinator}: "
                                 f"{type(exc).__name__}: {exc}",
                                 "check the address (--coordinator or LG_COORDINATOR, HOST:PORT) and that "
                                 "`labgrid-coordinator` runs there (see docs/lab.md).") from exc

    # ---- plumbing ---------------------------------------------------------------------------------------------
    async def _start(self) -> Any:
        from labgrid.remote.client import ClientSession

        session = ClientSession(self.coordinator, asyncio.get_running_loop())
        try:
            await asyncio.wait_for(session.start(), timeout=8.0)
        except (TimeoutError, Exception) as exc:
            raise FormicaryError(f"cannot reach the labgrid coordinator at {self.coordinator} ({exc or 'timeout'}).",
                                 "check the address (--coordinator or LG_COORDINATOR, HOST:PORT) and that "
                                 "`labgrid-coordinator` runs there (see docs/lab.md).") from exc
        return session

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError as exc:
            fut.cancel()
            raise FormicaryError(f"the labgrid coordinator at {self.coordinator} did not answer within "
                                 f"{timeout:g} s.", "check that the coordinator runs and is reachable.") from exc

    def _rpc(self, method: str, request: Any) -> Any:
        import grpc

        async def go() -> Any:
            if self.session.stopping.is_set():
                raise FormicaryError(f"lost the connection to the labgrid coordinator at {self.coordinator}.",
                                     "check that the coordinator still runs, then run again.")
            try:
                response = await getattr(self.session.stub, method)(request)
            except grpc.aio.AioRpcError as e:
                return e
            await self.session.sync_with_coordinator()
            return response

        return self._call(go())

    def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            with _LOOP_LOCK:
                shared = _SESSIONS.get(self.coordinator)
                if shared is not None and shared[0] is session:
                    shared[1] -= 1
                    if shared[1] > 0:
                        return
                    del _SESSIONS[self.coordinator]

            async def stop() -> None:
                try:
                    await asyncio.wait_for(session.stop(), timeout=3)
                    await session.close()
                except Exception:  # noqa: BLE001 -- closing a dead stream must not hide the real error
                    pass

            try:
                self._call(stop(), timeout=5)
            except FormicaryError:
                pass

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ----------------------------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """What labgrid records as the holder of a place this client acquires: host/user."""
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def sync(self) -> None:
        async def go() -> None:
            await self.session.sync_with_coordinator()

        self._call(go())
        if self.session.stopping.is_set():
            raise FormicaryError(f"lost the connection to the labgrid coordinator at {self.coordinator}.",
                                 "check that the coordinator still runs, then run again.")

    def resources(self) -> list[ResourceInfo]:
        out = []
        for exporter, groups in sorted(self.session.resources.items()):
            for group_name, group in sorted(groups.items()):
                for name, entry in sorted(group.items()):
                    if "cls" not in entry.data:  # deleted
                        continue
                    out.append(ResourceInfo(exporter, group_name, entry.cls, name, dict(entry.params),
                                            bool(entry.avail)))
        return out

    def _info(self, place: Any) -> PlaceInfo:
        mine = tuple(r for r in self.resources() if place.hasmatch((r.exporter, r.group, r.cls, r.name)))
        return PlaceInfo(name=place.name, tags=dict(place.tags), acquired=place.acquired or None,
                         reservation=place.reservation or None, comment=place.comment or "",
                         matches=tuple(str(m) for m in place.matches), resources=mine)

    def places(self, *, refresh: bool = False) -> dict[str, PlaceInfo]:
        if refresh:
            self.sync()
        return {name: self._info(p) for name, p in sorted(self.session.places.items())}

    def place(self, name: str, *, refresh: bool = True) -> PlaceInfo:
        if refresh:
            self.sync()
        p = self.session.places.get(name)
        if p is None:
            for cand in self.session.places.values():  # an alias
                if name in cand.aliases:
                    p = cand
                    break
        if p is None:
            known = ", ".join(sorted(self.session.places)) or "none"
            raise FormicaryError(f"place {name!r} does not exist on the labgrid coordinator {self.coordinator} "
                                 f"(places: {known}).",
                                 "check the place name, or create it (`formicary lab places INVENTORY`).",
                                 details={"place": name, "coordinator": self.coordinator})
        return self._info(p)

    def find_places(self, tags: dict[str, str]) -> list[PlaceInfo]:
        """Places whose tags include all of TAGS."""
        return [p for p in self.places(refresh=True).values() if all(p.tags.get(k) == v for k, v in tags.items())]

    # ---- who holds a place --------------------------------------------------------------------------------------
    def holder(self, info: PlaceInfo) -> dict[str, Any]:
        """Who holds INFO (acquired), and whether that looks stale: {"owner", "stale", "pid", "since", "note"}."""
        owner = info.acquired
        out: dict[str, Any] = {"owner": owner, "stale": False, "pid": None, "since": None, "note": ""}
        if owner is None:
            return out
        rec = self._read_record(info.name)
        if rec is not None and rec.get("identity") != owner:
            rec = None  # a record of an older acquisition by someone else of this machine
        if owner != self.identity and rec is None:
            out["note"] = f"held by {owner}"
            return out
        if rec is None:
            out["note"] = (f"held by you ({owner}), but not by a formicary process of this machine "
                           "(labgrid-client, or another checkout)")
            return out
        out["pid"], out["since"] = rec.get("pid"), rec.get("since")
        if rec.get("pid") and not _pid_alive(int(rec["pid"])):
            out["stale"] = True
            out["note"] = (f"held by {owner} for formicary process {rec['pid']} (acquired {rec.get('since')}), "
                           "which no longer runs: a stale acquisition (the process was killed before releasing)")
        else:
            out["note"] = f"held by {owner} for formicary process {rec.get('pid')} (running, since {rec.get('since')})"
        return out

    def _read_record(self, place: str) -> dict[str, Any] | None:
        try:
            return json.loads(_record_path(self.coordinator, place).read_text())
        except (OSError, ValueError):
            return None

    def _write_record(self, place: str) -> None:
        path = _record_path(self.coordinator, place)
        path.parent.mkdir(parents=True, exist_ok=True)
        from datetime import UTC, datetime

        since = datetime.now(UTC).isoformat(timespec="seconds")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "since": since, "identity": self.identity}))
        os.replace(tmp, path)

    def _drop_record(self, place: str) -> None:
        _record_path(self.coordinator, place).unlink(missing_ok=True)

    def busy_error(self, info: PlaceInfo, waited: float) -> FormicaryError:
        h = self.holder(info)
        release = f"formicary lab release {info.name} --coordinator {self.coordinator}"
        if h["stale"]:
            release += "" if h["owner"] == self.identity else " --force"
            fix = (f"nothing holds it any more: release it with `{release}` (or `labgrid-client -x "
                   f"{self.coordinator} -p {info.name} release`), then run again.")
        elif h["owner"] == self.identity:
            fix = (f"wait for that process, or release the place with `{release}` if nothing uses it; "
                   "pass --wait SECONDS to queue for it.")
        else:
            fix = (f"ask {h['owner']} to release it, pass --wait SECONDS to queue for it, or take it over with "
                   f"`{release} --force` (only if you are sure they are gone).")
        after = f" (waited {waited:.0f} s)" if waited >= 1 else ""
        return FormicaryError(f"place {info.name} is busy{after}: {h['note']}.", fix,
                              details={"place": info.name, "owner": h["owner"], "stale": h["stale"],
                                       "pid": h["pid"], "since": h["since"], "coordinator": self.coordinator})

    # ---- acquire / release ------------------------------------------------------------------------------------
    def acquire(self, name: str, *, wait: float = 0.0, steal: bool = False,
                on_event: Callable[[Event], None] | None = None) -> PlaceInfo:
        """Acquire place NAME. Held by someone else: wait up to WAIT seconds (reporting `busy` once with the
        owner), then raise; `steal` releases their lock first (labgrid's `release --kick`)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        t0 = time.monotonic()
        reported = False
        while True:
            info = self.place(name)
            if info.acquired and steal and info.acquired != self.identity:
                if on_event:
                    on_event({"event": "steal", "place": info.name, "owner": info.acquired})
                self.release(info.name, force=True)
                continue
            if info.acquired and steal and self.holder(info)["stale"]:
                self.release(info.name, force=True)
                continue
            if not info.acquired:
                if not info.resources:
                    raise FormicaryError(
                        f"place {info.name} matches no resource on {self.coordinator}: its lab host is not "
                        f"exporting (matches: {', '.join(info.matches) or 'none'}).",
                        "start the exporter on the lab host (`formicary lab export …` or `labgrid-exporter …`) "
                        "or fix the place's matches (`formicary lab places`).",
                        details={"place": info.name, "matches": list(info.matches)})
                self._write_record(info.name)  # first: a Ctrl-C during the call still knows it may hold it
                got = self._rpc("AcquirePlace", pb.AcquirePlaceRequest(placename=info.name))
                if not _is_error(got):
                    return self.place(info.name)
                self._drop_record(info.name)
                if "already acquired" not in got.details() and "reserved" not in got.details():
                    raise FormicaryError(f"labgrid refused to acquire place {info.name}: {got.details()}.",
                                         "see `formicary lab status`; the place may be reserved for someone else.",
                                         details={"place": info.name})
                info = self.place(name)  # lost a race: reported as busy below
            waited = time.monotonic() - t0
            if waited >= wait:
                raise self.busy_error(info, waited)
            if not reported and on_event:
                h = self.holder(info)
                on_event({"event": "busy", "place": info.name, "owner": h["owner"] or info.reservation,
                          "stale": h["stale"], "note": h["note"], "wait_s": wait})
                reported = True
            time.sleep(POLL_S)

    def release_if_mine(self, name: str) -> None:
        """After an interrupted acquire: release NAME if this process's acquisition went through after all."""
        rec = self._read_record(name)
        if rec is None or rec.get("pid") != os.getpid():
            return
        try:
            if self.place(name).acquired == self.identity:
                self.release(name)
            else:
                self._drop_record(name)
        except FormicaryError:
            pass

    def release(self, name: str, *, force: bool = False) -> None:
        """Release place NAME held by this host/user (or by anyone with `force`)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        info = self.place(name)
        if not info.acquired:
            self._drop_record(info.name)
            return
        if info.acquired != self.identity and not force:
            raise FormicaryError(f"place {info.name} is held by {info.acquired}, not by you ({self.identity}).",
                                 "pass --force to release someone else's place (they lose it mid-run).")
        req = pb.ReleasePlaceRequest(placename=info.name) if force else \
            pb.ReleasePlaceRequest(placename=info.name, fromuser=self.identity)
        got = self._rpc("ReleasePlace", req)
        if _is_error(got):
            raise FormicaryError(f"labgrid refused to release place {info.name}: {got.details()}.",
                                 "see `formicary lab status`.", details={"place": info.name})
        self._drop_record(info.name)

    # ---- reservations -----------------------------------------------------------------------------------------
    def reserve(self, tags: dict[str, str], prio: float = 0.0) -> str:
        """A reservation for one place whose tags include TAGS; returns its token (queued while none is free)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=tags)}, prio=prio)
        got = self._rpc("CreateReservation", req)
        if _is_error(got):
            raise FormicaryError(f"labgrid refused the reservation {tags}: {got.details()}.",
                                 "check the tag filter (lower-case keys, values of [a-z0-9_-]).")
        return str(got.reservation.token)

    def poll_reservation(self, token: str) -> dict[str, Any]:
        """{"state": waiting|allocated|acquired|expired|invalid, "place": allocated place or None, "owner"}."""
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        got = self._rpc("PollReservation", pb.PollReservationRequest(token=token))
        if _is_error(got):
            return {"state": "gone", "place": None, "owner": None}
        res = Reservation.from_pb2(got.reservation)
        places = [p for group in res.allocations.values() for p in group]
        return {"state": res.state.name, "place": places[0] if places else None, "owner": res.owner}

    def cancel_reservation(self, token: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        self._rpc("CancelReservation", pb.CancelReservationRequest(token=token))

    # ---- admin ------------------------------------------------------------------------------------------------
    def ensure_place(self, name: str, *, tags: dict[str, str], matches: list[str], comment: str | None = None
                     ) -> dict[str, Any]:
        """Create or update place NAME to have exactly TAGS and (at least) MATCHES; returns what changed."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        changed: list[str] = []
        self.sync()
        if name not in self.session.places:
            self._checked("AddPlace", pb.AddPlaceRequest(name=name), name)
            changed.append("created")
        place = self.session.places[name]
        if dict(place.tags) != tags:
            self._checked("SetPlaceTags", pb.SetPlaceTagsRequest(placename=name, tags=tags), name)
            changed.append("tags")
        for pattern in matches:
            if not place.hasmatch(pattern.split("/")):
                self._checked("AddPlaceMatch", pb.AddPlaceMatchRequest(placename=name, pattern=pattern), name)
                changed.append(f"match {pattern}")
        if comment is not None and (place.comment or "") != comment:
            self._checked("SetPlaceComment", pb.SetPlaceCommentRequest(placename=name, comment=comment), name)
            changed.append("comment")
        return {"place": name, "changed": changed}

    def _checked(self, method: str, request: Any, place: str) -> Any:
        got = self._rpc(method, request)
        if _is_error(got):
            raise FormicaryError(f"labgrid refused {method} for place {place}: {got.details()}.",
                                 "see the coordinator's log; a place held by someone cannot change its matches.",
                                 details={"place": place})
        return got


def _is_error(obj: Any) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, grpc.aio.AioRpcError)


__all__ = ["FLASHER_CLASS", "SERIAL_CLASSES", "LabClient", "PlaceInfo", "ResourceInfo", "records_dir"]
