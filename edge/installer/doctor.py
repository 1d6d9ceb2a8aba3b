"""``qilu-edge doctor``: prove a box is ready, check by check, each with a fix hint.

Every check returns pass / warn / fail / skip. A check whose capability is not in this build
(e.g. face models) skips with "not available" instead of failing, so the doctor is useful from
the first install on. Cloud checks (edge/installer/cloud_checks.py) skip only when the box is
meant to run offline (``[sync] enabled = false``). The same checks feed the CLI table, ``--json``
and the installer web page (which shows them one by one as they finish).

Devices are checked through their drivers: inside the daemon through the running instances,
from the CLI through fresh instances started just for the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from edge.core.config import ConfigError, CoreConfig
from edge.core.i18n import LANGS, Both, Lang, Msg
from edge.devices import DEVICES
from edge.installer.doctor_texts import ALL_DOORS, IN_MEMORY, STATES, TIMED_OUT, T

Status = Literal["pass", "warn", "fail", "skip"]
NOT_AVAILABLE = "not available in this build"


@dataclass
class Result:
    id: str  # "config", "door:door-1", ...
    title: str  # "English / 中文"
    status: Status
    detail: Msg | None = None  # in both languages (edge/installer/doctor_texts.py)
    hint: Msg | None = None  # what to do about a warn or fail
    seconds: float = 0.0

    def __post_init__(self) -> None:
        for text in (self.detail, self.hint):
            if text is not None and not isinstance(text, Msg):  # a text without its Chinese
                raise TypeError(f"{self.id}: doctor texts come from a catalogue, got {text!r}")

    def as_dict(self, lang: Lang = "zh") -> dict[str, Any]:
        """Stable id, status and message keys for scripts; each text in the asked language
        (detail, hint, title) and in both (detail_en, detail_zh, ...)."""
        en, _, zh = self.title.partition(" / ")
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "title": (en if lang == "en" else zh) if zh else self.title,
            "title_en": en,
            "title_zh": zh or en,
        }
        for name, text in (("detail", self.detail), ("hint", self.hint)):
            out[name] = text.text(lang) if text is not None else ""
            out[f"{name}_key"] = text.key if text is not None else None
            for one in LANGS:
                out[f"{name}_{one}"] = text.text(one) if text is not None else ""
        out["seconds"] = self.seconds
        return out


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def as_dict(self, lang: Lang = "zh") -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lang": lang,
            "counts": self.counts(),
            "checks": [r.as_dict(lang) for r in self.results],
        }


CheckFn = Callable[[], Awaitable[Result]]
DriverSource = Callable[[str, Any], Awaitable[Any]]  # (kind, device config) -> started driver


@dataclass
class Check:
    id: str
    title: str
    run: CheckFn


class Doctor:
    """Plans the checks for one config and runs them in order.

    ``box``: the running daemon's Box when the doctor runs inside it (installer page); then
    devices are the daemon's own driver instances and the store is the live one.
    """

    def __init__(
        self,
        *,
        config_path: Path | None = None,
        config: CoreConfig | None = None,
        box: Any = None,
        click: bool = False,
        loader: Callable[[Path], Any] | None = None,  # the box's config loader (CLI)
        actor: str | None = None,  # who asked (the installer page's staff token)
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.box = box
        self.click = click
        self.actor = actor
        self.config_error: str | None = None
        self._identity: Any = None  # the box's cloud identity, once the provisioned check read it
        self._skew: float | None = None  # box clock minus cloud clock, from the cloud check
        self._cert_clock = False  # the cloud's certificate was refused for the box's clock
        self._started: list[Any] = []  # drivers this doctor started and must stop
        self._faces: Any = None  # device_checks.FaceProbe, made at the first camera
        if self.config is None and self.config_path is not None and loader is not None:
            try:
                self.config = loader(self.config_path)
            except ConfigError as e:
                self.config_error = str(e)

    # -- planning -----------------------------------------------------------------------
    def plan(self) -> list[Check]:
        checks = [Check("config", "Config valid / 配置有效", self.check_config)]
        cfg = self.config
        if cfg is None:
            return checks
        checks += [
            Check("database", "Database integrity / 数据库完整", self.check_database),
            Check("disk", "Free disk / 磁盘空间", self.check_disk),
            Check("broker", "MQTT broker / 消息代理", self.check_broker),
        ]
        for kind, dev in cfg.devices():
            one = kind[:-1]
            checks.append(
                Check(
                    f"{one}:{dev.id}",
                    f"{one.capitalize()} {dev.id} {dev.name}".strip()
                    + f" / {_KINDS_ZH[one]} {dev.id} {dev.name}".rstrip(),
                    _bind(self.check_device, kind, dev),
                )
            )
        checks += [
            Check("models", "Face models / 人脸模型", self.check_models),
            Check("face_doors", "Face doors: strangers / 人脸门禁误识", self.check_face_doors),
            Check("face_templates", "Face templates match the setting / 人脸模板与设置一致",
                  self.check_face_templates),
            Check("face_load", "Face doors keep up / 人脸门禁负载", self.check_face_load),
            Check("provisioned", "Box provisioned / 已注册", self.check_provisioned),
            Check("cloud", "Cloud reachable / 云端可达", self.check_cloud),
            Check("transport", "Cloud link security / 云端连接安全", self.check_transport),
            Check("clock", "Clock vs cloud / 时钟偏差", self.check_clock),
            Check("relay", "Portal away from home / 在外访问", self.check_relay),
            Check("sync_quarantine", "Records refused by cloud / 云端拒收", self.check_quarantine),
            Check("sync_tasks", "Sync tasks running / 同步任务运行", self.check_sync_tasks),
        ]
        return checks

    async def run(self, on_result: Callable[[Result], Any] | None = None) -> Report:
        report = Report()
        try:
            for check in self.plan():
                t0 = time.monotonic()
                try:
                    result = await check.run()
                except Exception as e:  # a broken check is a failed check, not a crash
                    crashed = T("doctor.crashed", error=repr(e))
                    result = Result(check.id, check.title, "fail", crashed)
                result.id, result.title = check.id, check.title
                result.seconds = round(time.monotonic() - t0, 2)
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            await self._stop_drivers()
        return report

    # -- checks -------------------------------------------------------------------------
    async def check_config(self) -> Result:
        if self.config is None:
            from edge.installer.messages import config_zh

            err = self.config_error
            return Result(
                "config",
                "",
                "fail",
                T("config.invalid", error=Both(err, config_zh(err))) if err else
                T("config.missing"),
                T("config.hint", path=self.config_path),
            )
        n = len(self.config.devices())
        src = self.config.source or IN_MEMORY
        return Result("config", "", "pass", T("config.ok", source=src, n=n))

    async def check_database(self) -> Result:
        from edge.core.store import check_file

        cfg = self._cfg
        if self.box is not None:
            verdict = await self.box.store.integrity_check()
        elif not cfg.db_path.exists():
            return Result(
                "database",
                "",
                "warn",
                T("database.none", path=cfg.db_path),
                T("database.none_hint"),
            )
        else:
            verdict = await asyncio.to_thread(check_file, cfg.db_path)
        if verdict != "ok" and _read_only(cfg.db_path):
            return Result("database", "", "fail", T("database.read_only", path=cfg.db_path),
                          T("disk.read_only_hint"))  # fmt: skip
        if verdict == "ok":
            return Result("database", "", "pass", T("database.ok", path=cfg.db_path))
        return Result(
            "database",
            "",
            "fail",
            T("database.corrupt", path=cfg.db_path, verdict=verdict),
            T("database.corrupt_hint"),
        )

    async def check_disk(self) -> Result:
        cfg = self._cfg
        where = cfg.box.data_dir
        while not where.exists() and where != where.parent:
            where = where.parent
        if _read_only(where):
            return Result("disk", "", "fail", T("disk.read_only", where=where),
                          T("disk.read_only_hint"))  # fmt: skip
        free_mb = shutil.disk_usage(where).free // (1024 * 1024)
        ic = cfg.installer
        detail = T("disk.free", mb=free_mb, where=where)
        hint = T("disk.hint")
        if free_mb < ic.fail_free_disk_mb:
            return Result("disk", "", "fail", detail, hint)
        if free_mb < ic.warn_free_disk_mb:
            return Result("disk", "", "warn", detail, hint)
        return Result("disk", "", "pass", detail)

    async def check_broker(self) -> Result:
        import aiomqtt

        m = self._cfg.mqtt
        if not m.enabled:
            return Result("broker", "", "skip", T("broker.off"))
        try:
            async with asyncio.timeout(4):
                async with aiomqtt.Client(
                    m.host, m.port, username=m.username, password=m.password, timeout=3
                ):
                    pass
        except (aiomqtt.MqttError, TimeoutError, OSError) as e:
            return Result(
                "broker",
                "",
                "fail",
                T("broker.unreachable", host=m.host, port=m.port, error=str(e) or TIMED_OUT),
                T("broker.hint"),
            )
        return Result("broker", "", "pass", T("broker.ok", host=m.host, port=m.port))

    async def check_device(self, kind: str, dev: Any) -> Result:
        one = kind[:-1]
        rid = f"{one}:{dev.id}"
        if not dev.enabled:
            return Result(rid, "", "skip", T("device.disabled"))
        try:
            budget = self._cfg.installer.device_timeout_s
            drv = await asyncio.wait_for(self._driver(kind, dev), budget)
        except TimeoutError:
            return Result(rid, "", "fail", T("device.timeout", type=dev.type), _hint(kind))
        except Exception as e:
            return Result(
                rid, "", "fail", T("device.no_driver", type=dev.type, error=e), _hint(kind)
            )
        if kind == "cameras" and hasattr(drv, "next_frame"):
            # A camera started just now reports offline until its reader has a first frame.
            await drv.next_frame(limit_s=self._cfg.installer.device_timeout_s)
        state = STATES.get(drv.state, drv.state)
        detail = (
            T("device.state_reason", type=dev.type, state=state, reason=drv.reason)
            if drv.reason else T("device.state", type=dev.type, state=state)
        )
        if drv.state == "offline":
            return Result(rid, "", "fail", detail, _hint(kind))
        extra, status, hint = await self._exercise(kind, dev, drv)
        if extra:
            detail = T("device.more", first=detail, more=extra)
        if status == "fail":
            return Result(rid, "", "fail", detail, hint or _hint(kind))
        if drv.state == "degraded" or status == "warn":
            return Result(rid, "", "warn", detail, hint or _hint(kind))
        return Result(rid, "", "pass", detail)

    async def _exercise(
        self, kind: str, dev: Any, drv: Any
    ) -> tuple[Msg | None, str, Msg | None]:
        """Beyond "the driver is online": click a door, a face on a camera frame, a screen's
        player page. (detail, status, hint; no hint means the kind's usual one)."""
        from edge.installer import device_checks

        timeout = self._cfg.installer.device_timeout_s
        if kind == "doors":
            if not self.click:
                return None, "pass", None
            try:
                res = await asyncio.wait_for(drv.unlock(300), timeout)
            except Exception as e:
                await self._click_event(dev.id, None, str(e))
                return T("door.click_failed", error=e), "fail", None
            await self._click_event(dev.id, res.changed, None if res.ok else res.detail)
            if not res.ok:
                why = res.detail or T("door.not_closed")
                return T("door.click_bad", why=why), "fail", None
            if res.changed is None:  # the board cannot read its relay back
                return T("door.click_no_readback"), "pass", None
            if not res.changed:
                return T("door.click_not_switched"), "warn", None
            return T("door.click_ok"), "pass", None
        if kind == "cameras":
            if self._faces is None:
                self._faces = device_checks.FaceProbe(self._cfg, self.box)
            extra, status = await device_checks.camera_frame(drv, timeout, self._faces)
            return extra, status, T("camera.no_face_hint") if status == "warn" else None
        if kind == "screens":
            return await device_checks.screen_player(self._cfg, self.box, dev.id)
        return None, "pass", None

    async def _click_event(self, door_id: str, changed: bool | None, error: str | None) -> None:
        """A click pulses a live door (long enough to let someone in): inside the running box
        it is an access event like any other opening (before, it left none)."""
        if self.box is None:
            return
        from edge.core.standard import AccessEvent, new_id

        reason = ("door_offline" if error else "relay_not_switched" if changed is False
                  else "doctor_click")  # as AccessService.grant records them
        await self.box.store.record(AccessEvent(
            id=new_id("ae"), door_id=door_id, method="remote",
            decision="granted" if reason == "doctor_click" else "denied", reason=reason,
            actor=self.actor or "doctor", relay_changed=changed))

    async def check_models(self) -> Result:
        from edge.faces import cli  # the `qilu-edge models` commands (loads click only)

        if not self._cfg.faces.enabled:
            return Result("models", "", "skip", T("models.off"))
        cmd = [sys.executable, "-m", "edge", "models", "verify", *self._models_args(cli)]
        try:
            proc = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            return Result("models", "", "fail", T("models.timeout"))
        out = (proc.stdout + proc.stderr).strip().splitlines()
        last = out[-1] if out else ""
        if proc.returncode == 0:
            return Result("models", "", "pass", T("models.ok", line=last or T("models.verified")))
        return Result(
            "models",
            "",
            "fail",
            T("models.failed", line=last) if last else T("models.exit", code=proc.returncode),
            T("models.hint"),
        )

    async def check_face_doors(self) -> Result:
        """The threshold each door's per-visit target gives at today's gallery size, and the
        resident acceptance to expect there (edge/faces/openset.py, docs/faces.md)."""
        from edge.faces.openset import operating_point

        cfg = self._cfg
        if not cfg.faces.enabled:
            return Result("face_doors", "", "skip", T("models.off"))
        if self.box is not None:
            from edge.faces import store as store_faces

            residents, templates = await self.box.store.run(
                store_faces.gallery_counts, self.box.store.sync)
        elif cfg.db_path.exists():
            residents, templates = await asyncio.to_thread(_gallery_counts, cfg.db_path)
        else:
            residents = templates = 0
        if cfg.faces.target_fpir is None:
            return Result("face_doors", "", "warn",
                          T("face_doors.fixed", threshold=cfg.faces.threshold,
                            residents=residents),
                          T("face_doors.fixed_hint"))
        parts, low = [], []
        doors = [d for d in cfg.doors if d.camera] or [None]
        for d in doors:
            target = d.face_target_fpir if d is not None else None
            op = operating_point(cfg.faces, residents, templates, target)
            if op is None:
                continue
            name = d.id if d is not None else ALL_DOORS
            parts.append(T("face_doors.door", door=name, visits=round(1 / op.target_fpir),
                           threshold=op.threshold, acceptance=op.expected_resident_acceptance))
            if op.expected_resident_acceptance < cfg.access.second_factor_min_acceptance:
                low.append(name)
        if parts:  # what the expected acceptance rests on (docs/faces.md)
            from edge.faces.openset import GENUINE_FIT_PEOPLE, score_kind

            parts.append(T("face_doors.fit", scores=score_kind(cfg.faces, templates),
                           people=GENUINE_FIT_PEOPLE))
        detail = T("face_doors.summary", residents=residents, templates=templates, doors=parts)
        if low:
            return Result("face_doors", "", "warn", detail, T("face_doors.low_hint", doors=low))
        return Result("face_doors", "", "pass", detail)

    async def check_face_templates(self) -> Result:
        """Templates embedded with another [faces] flip setting or another model file than
        door frames are embedded with now (edge/faces/store.py embedding_mismatch)."""
        from edge.faces import store as store_faces
        from edge.faces import weights
        from edge.faces.texts import mismatch_texts

        cfg = self._cfg
        if not cfg.faces.enabled:
            return Result("face_templates", "", "skip", T("models.off"))
        try:
            label = weights.embedding_label(cfg.faces.flip)
        except weights.ModelError as e:
            return Result("face_templates", "", "skip", T("face_templates.no_manifest",
                                                          error=str(e)), T("models.hint"))
        if self.box is not None:
            _, templates = await self.box.store.run(store_faces.gallery_counts,
                                                    self.box.store.sync)
            m = await self.box.store.run(store_faces.embedding_mismatch_of,
                                         self.box.store.sync, label)
        elif cfg.db_path.exists():
            templates, m = await asyncio.to_thread(_embedding_mismatch, cfg.db_path, label)
        else:
            templates, m = 0, None
        if templates == 0:
            return Result("face_templates", "", "pass", T("face_templates.none"))
        if m is None:
            return Result("face_templates", "", "pass",
                          T("face_templates.ok", templates=templates, label=label))
        detail, hint = mismatch_texts(m, cfg.faces.flip)
        return Result("face_templates", "", "warn", detail, hint)

    async def check_face_load(self) -> Result:
        """Whether the running box keeps up with its face doors (edge/faces/scheduler.py):
        frames dropped for the deadline mean slower doors (never a weaker decision)."""
        if not any(d.camera for d in self._cfg.doors):
            return Result("face_load", "", "skip", T("face_load.no_camera"))
        if self.box is None:
            return Result("face_load", "", "skip", T("face_load.outside"))
        from edge.access import ACCESS

        try:
            st = self.box.get(ACCESS).status().get("face_load")
        except KeyError:
            st = None
        if st is None:
            return Result("face_load", "", "pass", T("face_load.unused"))
        busy = st["face_thread_busy"]
        if st["overloaded"]:
            return Result("face_load", "", "warn", T("face_load.over", reason=st["reason"],
                                                     busy=busy), T("face_load.over_hint"))
        return Result("face_load", "", "pass", T("face_load.ok", busy=busy))

    async def check_provisioned(self) -> Result:
        from edge.installer import cloud_checks

        if not self._cfg.sync.enabled:
            return Result("provisioned", "", "skip", T("sync.off"))
        ident, out = await asyncio.to_thread(cloud_checks.read_identity, self._cfg)
        self._identity = ident  # a file with loose permissions is still tried against the cloud
        return Result("provisioned", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_cloud(self) -> Result:
        from edge.installer import cloud_checks

        if not self._cfg.sync.enabled:
            return Result("cloud", "", "skip", T("sync.off"))
        if self._identity is None:
            return Result("cloud", "", "skip", T("cloud.not_provisioned"))
        timeout = min(self._cfg.sync.request_timeout_s, 10.0)
        probe = await cloud_checks.probe_cloud(self._cfg, self._identity, timeout)
        self._skew = probe.skew_s
        out = probe.outcome
        self._cert_clock = out.detail.key == "cloud.cert_clock"  # TLS refused: clock off
        return Result("cloud", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_transport(self) -> Result:
        from edge.installer import cloud_checks

        if not self._cfg.sync.enabled:
            return Result("transport", "", "skip", T("sync.off"))
        out = cloud_checks.transport_outcome(self._cfg, self._identity)
        return Result("transport", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_clock(self) -> Result:
        from edge.installer import cloud_checks

        out = cloud_checks.clock_outcome(self._cfg, self._skew)
        return Result("clock", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_relay(self) -> Result:
        from edge.installer import cloud_checks

        if not (self._cfg.portal.enabled and self._cfg.portal.relay):
            return Result("relay", "", "skip", T("relay.off"))
        if self._skew is None or self._cert_clock:  # the cloud check got no signed answer
            return Result("relay", "", "skip", T("relay.no_cloud"))
        timeout = min(self._cfg.sync.request_timeout_s, 10.0)
        out = await cloud_checks.probe_relay(self._cfg, self._identity, timeout)
        return Result("relay", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_quarantine(self) -> Result:
        from edge.sync.health import quarantine_outcome

        status, detail, hint = await quarantine_outcome(self._cfg, self.box)
        return Result("sync_quarantine", "", status, detail, hint)  # type: ignore[arg-type]

    async def check_sync_tasks(self) -> Result:
        from edge.sync.health import tasks_outcome

        status, detail, hint = tasks_outcome(self.box)
        return Result("sync_tasks", "", status, detail, hint)  # type: ignore[arg-type]

    # -- helpers ------------------------------------------------------------------------
    @property
    def _cfg(self) -> Any:
        assert self.config is not None
        return self.config

    async def _driver(self, kind: str, dev: Any) -> Any:
        if self.box is not None:
            return self.box.get(DEVICES).get(kind[:-1], dev.id)
        from drivers import registry

        drv = registry.get(kind, dev.type)(dev)
        self._started.append(drv)
        await drv.start()
        return drv

    def _models_args(self, cli: Any) -> list[str]:
        """Point `models verify` at this box's model folder, whichever option it takes."""
        params = {p.name for p in cli.models_group.commands["verify"].params}
        if "config_path" in params and self.config_path is not None:
            return ["-c", str(self.config_path)]
        face = getattr(self._cfg, "faces", None)
        folder = getattr(face, "model_dir", None)
        if "model_dir" in params and folder is not None:
            if not folder.is_absolute() and self._cfg.source is not None:
                folder = self._cfg.source.parent / folder
            return ["--dir", str(folder)]
        return []

    async def _stop_drivers(self) -> None:
        for drv in self._started:
            try:
                await asyncio.wait_for(drv.stop(), 2.0)
            except Exception:  # the check already reported what matters
                pass
        self._started.clear()
        if self._faces is not None:
            await asyncio.to_thread(self._faces.close)
            self._faces = None


_KINDS_ZH = {"door": "门", "camera": "摄像头", "screen": "屏幕"}


def _read_only(path: Path) -> bool:
    """Whether ``path`` (or its nearest existing folder) is on a read-only file system."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _hint(kind: str) -> Msg:
    return T(f"{kind[:-1]}.hint")  # door.hint, camera.hint, screen.hint


_R = TypeVar("_R")


def _read_faces(db_path: Path, read: Callable[[Any], _R], default: _R) -> _R:
    """``read`` (given a read-only connection's ``execute``) on a stopped box's store;
    ``default`` when the face tables are not migrated yet."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        try:
            return read(db.execute)
        except sqlite3.OperationalError:  # not migrated yet
            return default


def _gallery_counts(db_path: Path) -> tuple[int, int]:
    def read(execute: Any) -> tuple[int, int]:
        row = execute("SELECT count(DISTINCT resident_id), count(*) FROM face_templates")
        residents, templates = row.fetchone()
        return int(residents), int(templates)

    return _read_faces(db_path, read, (0, 0))


def _embedding_mismatch(db_path: Path, label: str) -> tuple[int, dict[str, Any] | None]:
    from edge.faces.store import embedding_mismatch

    def read(execute: Any) -> tuple[int, dict[str, Any] | None]:
        total = execute("SELECT count(*) FROM face_templates").fetchone()[0]
        return int(total), embedding_mismatch(execute, label)

    return _read_faces(db_path, read, (0, None))


def _bind(fn: Callable[..., Awaitable[Result]], *args: Any) -> CheckFn:
    async def call() -> Result:
        return await fn(*args)

    return call


# -- presentation ------------------------------------------------------------------------
_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}
# Two CJK characters are as wide as four letters on a terminal: the columns stay aligned.
_MARKS_ZH = {"pass": "通过", "warn": "警告", "fail": "失败", "skip": "跳过"}


def format_row(r: Result, colour: bool = True, lang: Lang = "zh") -> str:
    import click

    mark = r.status.upper().ljust(4) if lang == "en" else _MARKS_ZH[r.status]
    if colour:
        mark = click.style(mark, fg=_COLOURS[r.status], bold=r.status == "fail")
    line = f"{mark}  {r.id:<24} {r.detail.text(lang) if r.detail else ''}"
    if r.hint and r.status in ("warn", "fail"):
        fix = "fix: " if lang == "en" else "修复："
        line += f"\n      {'':<24} {fix}{r.hint.text(lang)}"
    return line


def summary(report: Report, lang: Lang = "zh") -> str:
    c = report.counts()
    if lang == "en":
        verdict = "READY" if report.ok else "NOT READY"
        return f"{verdict}: {c['pass']} pass, {c['warn']} warn, {c['fail']} fail, {c['skip']} skip"
    verdict = "可以交付" if report.ok else "未就绪"
    return (f"{verdict}：{c['pass']} 项通过，{c['warn']} 项警告，{c['fail']} 项失败，"
            f"{c['skip']} 项跳过")
