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
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge.core.config import ConfigError, CoreConfig
from edge.devices import DEVICES

Status = Literal["pass", "warn", "fail", "skip"]
NOT_AVAILABLE = "not available in this build"


@dataclass
class Result:
    id: str  # "config", "door:door-1", ...
    title: str
    status: Status
    detail: str = ""
    hint: str = ""  # what to do about a warn or fail
    seconds: float = 0.0


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [asdict(r) for r in self.results],
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
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.box = box
        self.click = click
        self.config_error: str | None = None
        self._identity: Any = None  # the box's cloud identity, once the provisioned check read it
        self._skew: float | None = None  # box clock minus cloud clock, from the cloud check
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
                    f"{one.capitalize()} {dev.id} {dev.name}".strip(),
                    _bind(self.check_device, kind, dev),
                )
            )
        checks += [
            Check("models", "Face models / 人脸模型", self.check_models),
            Check("face_doors", "Face doors: strangers / 人脸门禁误识", self.check_face_doors),
            Check("face_load", "Face doors keep up / 人脸门禁负载", self.check_face_load),
            Check("provisioned", "Box provisioned / 已注册", self.check_provisioned),
            Check("cloud", "Cloud reachable / 云端可达", self.check_cloud),
            Check("clock", "Clock vs cloud / 时钟偏差", self.check_clock),
            Check("relay", "Portal away from home / 在外访问", self.check_relay),
            Check("sync_quarantine", "Records refused by cloud / 云端拒收", self.check_quarantine),
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
                    result = Result(check.id, check.title, "fail", f"check crashed: {e!r}")
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
            return Result(
                "config",
                "",
                "fail",
                self.config_error or "no config",
                f"fix the named keys, then `qilu-edge check-config -c {self.config_path}`",
            )
        n = len(self.config.devices())
        src = self.config.source or "(in memory)"
        return Result("config", "", "pass", f"{src}: {n} devices")

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
                f"no database yet at {cfg.db_path}",
                "start the daemon (it creates it) or run `qilu-edge db migrate`",
            )
        else:
            verdict = await asyncio.to_thread(check_file, cfg.db_path)
        if verdict == "ok":
            return Result("database", "", "pass", f"{cfg.db_path}: integrity ok")
        return Result(
            "database",
            "",
            "fail",
            f"{cfg.db_path}: {verdict}",
            "stop the daemon and restart it: a corrupt database is moved aside and a fresh one "
            "started; `qilu-edge db backup` first if it still opens",
        )

    async def check_disk(self) -> Result:
        cfg = self._cfg
        where = cfg.box.data_dir
        while not where.exists() and where != where.parent:
            where = where.parent
        free_mb = shutil.disk_usage(where).free // (1024 * 1024)
        ic = cfg.installer
        detail = f"{free_mb} MB free at {where}"
        hint = "free space on the SD card (old backups, logs) or use a larger card"
        if free_mb < ic.fail_free_disk_mb:
            return Result("disk", "", "fail", detail, hint)
        if free_mb < ic.warn_free_disk_mb:
            return Result("disk", "", "warn", detail, hint)
        return Result("disk", "", "pass", detail)

    async def check_broker(self) -> Result:
        import aiomqtt

        m = self._cfg.mqtt
        if not m.enabled:
            return Result("broker", "", "skip", "MQTT disabled in config ([mqtt] enabled = false)")
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
                f"{m.host}:{m.port}: {e or 'timed out'}",
                "`systemctl status mosquitto`; its listener is in "
                "/etc/mosquitto/conf.d/qilu-edge.conf ([mqtt] host/port must match)",
            )
        return Result("broker", "", "pass", f"connected to {m.host}:{m.port}")

    async def check_device(self, kind: str, dev: Any) -> Result:
        one = kind[:-1]
        rid = f"{one}:{dev.id}"
        if not dev.enabled:
            return Result(rid, "", "skip", "disabled in config (enabled = false)")
        try:
            budget = self._cfg.installer.device_timeout_s
            drv = await asyncio.wait_for(self._driver(kind, dev), budget)
        except TimeoutError:
            return Result(
                rid, "", "fail", f"{dev.type}: no answer within the check's time", _HINTS[kind]
            )
        except Exception as e:
            return Result(rid, "", "fail", f"{dev.type}: cannot start driver: {e}", _HINTS[kind])
        if kind == "cameras" and hasattr(drv, "next_frame"):
            # A camera started just now reports offline until its reader has a first frame.
            await drv.next_frame(limit_s=self._cfg.installer.device_timeout_s)
        detail = f"{dev.type}: {drv.state}" + (f" ({drv.reason})" if drv.reason else "")
        if drv.state == "offline":
            return Result(rid, "", "fail", detail, _HINTS[kind])
        extra, status, hint = await self._exercise(kind, dev, drv)
        if extra:
            detail = f"{detail}; {extra}"
        if status == "fail":
            return Result(rid, "", "fail", detail, hint or _HINTS[kind])
        if drv.state == "degraded" or status == "warn":
            return Result(rid, "", "warn", detail, hint or _HINTS[kind])
        return Result(rid, "", "pass", detail)

    async def _exercise(self, kind: str, dev: Any, drv: Any) -> tuple[str, str, str]:
        """Beyond "the driver is online": click a door, a face on a camera frame, a screen's
        player page. (detail, status, hint; an empty hint means the kind's usual one)."""
        from edge.installer import device_checks

        timeout = self._cfg.installer.device_timeout_s
        if kind == "doors":
            if not self.click:
                return "", "pass", ""
            try:
                res = await asyncio.wait_for(drv.unlock(300), timeout)
            except Exception as e:
                return f"click test failed: {e}", "fail", ""
            if not res.ok:
                return f"click test: {res.detail or 'relay did not close again'}", "fail", ""
            if res.changed is None:  # the board cannot read its relay back
                return "click test: pulse sent (board has no read-back; listen for it)", "pass", ""
            if not res.changed:
                return "click test: relay did not read back as switched", "warn", ""
            return "click test: relay switched and closed", "pass", ""
        if kind == "cameras":
            if self._faces is None:
                self._faces = device_checks.FaceProbe(self._cfg, self.box)
            extra, status = await device_checks.camera_frame(drv, timeout, self._faces)
            return extra, status, device_checks.NO_FACE_HINT if status == "warn" else ""
        if kind == "screens":
            return await device_checks.screen_player(self._cfg, self.box, dev.id)
        return "", "pass", ""

    async def check_models(self) -> Result:
        from edge.faces import cli  # the `qilu-edge models` commands (loads click only)

        if not self._cfg.faces.enabled:
            return Result("models", "", "skip", "face recognition off ([faces] enabled = false)")
        cmd = [sys.executable, "-m", "edge", "models", "verify", *self._models_args(cli)]
        try:
            proc = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            return Result("models", "", "fail", "`models verify` took over 120 s")
        out = (proc.stdout + proc.stderr).strip().splitlines()
        last = out[-1] if out else ""
        if proc.returncode == 0:
            return Result("models", "", "pass", last or "verified")
        return Result(
            "models",
            "",
            "fail",
            last or f"`models verify` exited {proc.returncode}",
            "`qilu-edge models fetch` then `qilu-edge models verify`",
        )

    async def check_face_doors(self) -> Result:
        """The threshold each door's per-visit target gives at today's gallery size, and the
        resident acceptance to expect there (edge/faces/openset.py, docs/faces.md)."""
        from edge.faces.openset import operating_point

        cfg = self._cfg
        if not cfg.faces.enabled:
            return Result("face_doors", "", "skip",
                          "face recognition off ([faces] enabled = false)")
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
                          f"fixed threshold {cfg.faces.threshold} for {residents} residents: the "
                          "stranger rate grows with the community",
                          "set [faces] target_fpir (stranger false-accepts per visit)")
        parts, low = [], []
        doors = [d for d in cfg.doors if d.camera] or [None]
        for d in doors:
            target = d.face_target_fpir if d is not None else None
            op = operating_point(cfg.faces, residents, templates, target)
            if op is None:
                continue
            name = d.id if d is not None else "all"
            parts.append(f"{name}: 1/{round(1 / op.target_fpir):,} strangers per visit -> "
                         f"threshold {op.threshold:.3f}, residents let in "
                         f"~{op.expected_resident_acceptance:.1%}")
            if op.expected_resident_acceptance < 0.98:
                low.append(name)
        detail = f"{residents} residents ({templates} templates); " + "; ".join(parts)
        if low:
            return Result("face_doors", "", "warn", detail,
                          f"{', '.join(low)}: residents would often be refused at this target and "
                          "size; raise the door's face_target_fpir or ask for a second factor")
        return Result("face_doors", "", "pass", detail)

    async def check_face_load(self) -> Result:
        """Whether the running box keeps up with its face doors (edge/faces/scheduler.py):
        frames dropped for the deadline mean slower doors (never a weaker decision)."""
        if not any(d.camera for d in self._cfg.doors):
            return Result("face_load", "", "skip", "no door has a camera")
        if self.box is None:
            return Result("face_load", "", "skip",
                          "known only inside the running box: the installer page's doctor, or "
                          "GET /api/v1/status (services.access.face_load)")
        from edge.access import ACCESS

        try:
            st = self.box.get(ACCESS).status().get("face_load")
        except KeyError:
            st = None
        if st is None:
            return Result("face_load", "", "pass", "no face has been looked at yet")
        busy = f"face thread busy {st['face_thread_busy']:.0%}"
        if st["overloaded"]:
            return Result("face_load", "", "warn", f"{st['reason']} ({busy})",
                          "fewer or lower-resolution door cameras (a sub-stream: ONVIF "
                          "min_width), a lower [access] sample_fps, or a faster box; doors "
                          "stay safe but open later")
        return Result("face_load", "", "pass", f"keeping up; {busy}")

    async def check_provisioned(self) -> Result:
        from edge.installer import cloud_checks

        if not self._cfg.sync.enabled:
            return Result("provisioned", "", "skip", "cloud sync off ([sync] enabled = false)")
        ident, out = await asyncio.to_thread(cloud_checks.read_identity, self._cfg)
        self._identity = ident  # a file with loose permissions is still tried against the cloud
        return Result("provisioned", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_cloud(self) -> Result:
        from edge.installer import cloud_checks

        if not self._cfg.sync.enabled:
            return Result("cloud", "", "skip", "cloud sync off ([sync] enabled = false)")
        if self._identity is None:
            return Result("cloud", "", "skip", "not provisioned (see the provisioned check)")
        timeout = min(self._cfg.sync.request_timeout_s, 10.0)
        probe = await cloud_checks.probe_cloud(self._cfg, self._identity, timeout)
        self._skew = probe.skew_s
        out = probe.outcome
        return Result("cloud", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_clock(self) -> Result:
        from edge.installer import cloud_checks

        out = cloud_checks.clock_outcome(self._cfg, self._skew)
        return Result("clock", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_relay(self) -> Result:
        from edge.installer import cloud_checks

        if not (self._cfg.portal.enabled and self._cfg.portal.relay):
            return Result("relay", "", "skip", "portal relay off ([portal] relay = false)")
        if self._skew is None:  # the cloud check did not get an answer
            return Result("relay", "", "skip", "no cloud to relay through (see the cloud check)")
        timeout = min(self._cfg.sync.request_timeout_s, 10.0)
        out = await cloud_checks.probe_relay(self._cfg, self._identity, timeout)
        return Result("relay", "", out.status, out.detail, out.hint)  # type: ignore[arg-type]

    async def check_quarantine(self) -> Result:
        from edge.sync.health import quarantine_outcome

        status, detail, hint = await quarantine_outcome(self._cfg, self.box)
        return Result("sync_quarantine", "", status, detail, hint)  # type: ignore[arg-type]

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


_HINTS = {
    "doors": "check the relay board's power, wiring and address (`qilu-edge modbus scan`)",
    "cameras": "check the camera's power, network and stream URL/credentials",
    "screens": "check the screen's power and network; open its player page",
}


def _gallery_counts(db_path: Path) -> tuple[int, int]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        try:
            row = db.execute(
                "SELECT count(DISTINCT resident_id), count(*) FROM face_templates").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0, 0
    return int(row[0]), int(row[1])


def _bind(fn: Callable[..., Awaitable[Result]], *args: Any) -> CheckFn:
    async def call() -> Result:
        return await fn(*args)

    return call


# -- presentation ------------------------------------------------------------------------
_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}


def format_row(r: Result, colour: bool = True) -> str:
    import click

    mark = r.status.upper().ljust(4)
    if colour:
        mark = click.style(mark, fg=_COLOURS[r.status], bold=r.status == "fail")
    line = f"{mark}  {r.id:<24} {r.detail}"
    if r.hint and r.status in ("warn", "fail"):
        line += f"\n      {'':<24} fix: {r.hint}"
    return line


def summary(report: Report) -> str:
    c = report.counts()
    verdict = "READY" if report.ok else "NOT READY"
    return f"{verdict}: {c['pass']} pass, {c['warn']} warn, {c['fail']} fail, {c['skip']} skip"
