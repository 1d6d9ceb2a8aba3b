"""`qilu-edge doctor` cloud checks against a real `qilu-cloudsync serve` process on loopback:
provisioned / cloud reachable (signed request) / clock skew, each with exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.cloudsync.faults import FAKETIME_LIB
from tests.cloudsync.helpers import FAST_SYNC, cli_provision, serve_tls, start_cloud
from tests.conftest import box_toml

QILU_EDGE = str(Path(sys.executable).parent / "qilu-edge")


async def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    import os

    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def doctor(config: Path, env: dict[str, str] | None = None) -> tuple[int, dict]:
    code, out = await run([QILU_EDGE, "doctor", "-c", str(config), "--json", "--lang", "en"], env)
    start = out.index("{")
    report = json.loads(out[start : out.rindex("}") + 1])
    return code, {c["id"]: c for c in report["checks"]}


def failures(by: dict) -> dict:
    return {k: (v["status"], v["detail"]) for k, v in by.items() if v["status"] == "fail"}


def faketime(offset: str) -> dict[str, str]:
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


async def test_doctor_cloud_checks_against_a_real_cloud(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(box_toml(tmp_path))
    ident_file = tmp_path / "data" / "cloud-identity.json"
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path, subprocess_=True)
    try:
        await cloud.community()

        # Not provisioned: a fail that names the command to run; nothing to ask the cloud.
        code, by = await doctor(config)
        assert code == 1
        assert by["provisioned"]["status"] == "fail"
        assert "qilu-edge provision" in by["provisioned"]["hint"]
        assert by["cloud"]["status"] == "skip" and by["clock"]["status"] == "skip"

        # Provisioned with the real command: everything passes, exit 0.
        code, out = await run(
            [QILU_EDGE, "provision", "-c", str(config), "--cloud", cloud.url,
             "--claim", await cloud.claim()]
        )  # fmt: skip
        assert code == 0, out
        code, by = await doctor(config)
        assert code == 0, failures(by)
        assert by["provisioned"]["status"] == "pass" and "0600" in by["provisioned"]["detail"]
        assert by["cloud"]["status"] == "pass" and "authenticated" in by["cloud"]["detail"]
        assert by["clock"]["status"] == "pass", by["clock"]
        assert by["transport"]["status"] == "pass", by["transport"]  # loopback
        # No daemon runs here, so residents away from home cannot reach the box: a warning
        # that says what to look at (the running case: test_relay_check_passes_...).
        assert by["relay"]["status"] == "warn", by["relay"]
        assert "no relay socket" in by["relay"]["detail"]
        assert "daemon running" in by["relay"]["hint"]
        box_id = json.loads(ident_file.read_text())["box_id"]

        # A secret readable by others is a fail with the chmod to run.
        ident_file.chmod(0o644)
        code, by = await doctor(config)
        assert code == 1 and by["provisioned"]["status"] == "fail"
        assert f"chmod 600 {ident_file}" in by["provisioned"]["hint"]
        ident_file.chmod(0o600)

        # Clock: a few seconds fast warns, minutes fast fails (the identity still works: the
        # doctor signs with the cloud's time after the cloud refused its timestamp).
        # Same box without face models: the models check starts a nested Python, which
        # libfaketime sometimes breaks (EINVAL) — an artefact of the fake clock, not the box.
        config = tmp_path / "edge-noface.toml"
        config.write_text(box_toml(tmp_path, extra="\n[faces]\nenabled = false\n"))
        code, by = await doctor(config, faketime("+3.5"))
        assert by["clock"]["status"] == "warn", by["clock"]
        assert code == 0, failures(by)
        code, by = await doctor(config, faketime("+400"))
        assert code == 1
        assert by["clock"]["status"] == "fail", by["clock"]
        skew = float(by["clock"]["detail"].split(" is ")[1].split(" s ")[0])
        assert 398 < skew < 402, by["clock"]
        assert by["cloud"]["status"] == "pass", by["cloud"]
        assert "timedatectl" in by["clock"]["hint"]

        # A wrong secret: refused, with the way back.
        good = ident_file.read_text()
        data = json.loads(good)
        ident_file.write_text(json.dumps({**data, "secret": "x" * 43}))
        ident_file.chmod(0o600)
        code, by = await doctor(config)
        assert code == 1 and by["cloud"]["status"] == "fail"
        assert "refused" in by["cloud"]["detail"] and "--force" in by["cloud"]["hint"]
        ident_file.write_text(good)

        # Revoked by ops: a fail that says so.
        status, body = await cloud.call("POST", f"/api/v1/ops/boxes/{box_id}/revoke")
        assert status == 200, body
        code, by = await doctor(config)
        assert code == 1 and by["cloud"]["status"] == "fail"
        assert "revoked" in by["cloud"]["detail"] and "claim code" in by["cloud"]["hint"]
    finally:
        await cloud.stop()

    # The cloud is down: "cloud unreachable", no clock verdict, exit 1.
    code, by = await doctor(config)
    assert code == 1
    assert by["cloud"]["status"] == "fail" and "cloud unreachable" in by["cloud"]["detail"]
    assert by["clock"]["status"] == "skip"
    assert by["provisioned"]["status"] == "pass"


async def test_offline_box_skips_cloud_checks(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(box_toml(tmp_path, extra="\n[sync]\nenabled = false\n"))
    code, by = await doctor(config)
    assert code == 0, by
    assert {by[k]["status"] for k in ("provisioned", "cloud", "clock")} == {"skip"}


async def test_relay_check_passes_with_the_daemon_running(
    make_config, run_box, tmp_path: Path
) -> None:
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    try:
        await cloud.community(community="c1")
        config = make_config(extra=FAST_SYNC)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        box = await run_box(config)
        relay = box.service("portal_relay")
        for _ in range(100):  # bounded: the relay dials the cloud within a second or two
            if relay.connected:
                break
            await asyncio.sleep(0.1)
        _, by = await doctor(config.source)
        assert by["relay"]["status"] == "pass", by["relay"]
        assert f"{cloud.url}/r/at/c1" in by["relay"]["detail"]
    finally:
        await cloud.stop()


def test_transport_warns_on_plain_http_and_unverified_tls(make_config) -> None:
    """Probe finding D: doctor names a plain http:// cloud or tls_verify = false (not for a
    cloud on this machine)."""
    from edge.installer.cloud_checks import transport_outcome
    from edge.sync.identity import Identity

    def ident(cloud: str) -> Identity:
        return Identity(box_id="b1", secret="s" * 43, cloud=cloud, community_id="c1")

    cfg = make_config()
    out = transport_outcome(cfg, ident("http://cloud.example.cn"))
    assert out.status == "warn" and "plain http://" in out.detail.en
    assert transport_outcome(cfg, ident("https://cloud.example.cn")).status == "pass"
    assert transport_outcome(cfg, ident("http://127.0.0.1:8443")).status == "pass"
    assert transport_outcome(cfg, ident("http://relay.localhost:8443")).status == "pass"
    no_verify = make_config(extra="\n[sync]\ntls_verify = false\n")
    out = transport_outcome(no_verify, ident("https://cloud.example.cn"))
    assert out.status == "warn" and "tls_verify = false" in out.detail.en
    assert transport_outcome(no_verify, ident("https://[::1]:8443")).status == "pass"


async def test_a_clock_days_behind_a_tls_cloud_is_named_as_the_clock(tmp_path: Path) -> None:
    """A box with no RTC that has not reached NTP (a Raspberry Pi after a power cut) starts
    days or years in the past; against an https cloud (the norm) its TLS check then finds the
    cloud's certificate "not yet valid". The doctor said "cloud unreachable, check the
    network" and skipped the clock check ("no time from the cloud"): the installer went
    after the network, not the clock."""
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    try:
        https, cert = await serve_tls(cloud, tmp_path)  # the same cloud, also over TLS
        await cloud.community()
        config = tmp_path / "edge.toml"
        config.write_text(box_toml(tmp_path, extra=f'\n[faces]\nenabled = false\n[sync]\n'
                                   f'ca_file = "{cert}"\n'))  # fmt: skip
        code, out = await run([QILU_EDGE, "provision", "-c", str(config), "--cloud", https,
                               "--claim", await cloud.claim()])  # fmt: skip
        assert code == 0, out
        code, by = await doctor(config)
        assert by["cloud"]["status"] == "pass" and by["clock"]["status"] == "pass", by

        code, by = await doctor(config, faketime("-400d"))  # the box's clock 400 days behind
        assert code == 1
        clock = by["clock"]
        assert clock["status"] == "fail", clock
        skew = float(clock["detail"].split(" is ")[1].split(" s ")[0])
        assert abs(skew + 400 * 86400) < 60, clock
        assert "timedatectl" in clock["hint"]
        assert by["cloud"]["status"] == "fail" and "clock" in by["cloud"]["hint"], by["cloud"]
        assert by["relay"]["status"] == "skip"  # not a third failure for the same cause
    finally:
        await cloud.stop()
