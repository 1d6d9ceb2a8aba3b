"""Every detail and fix hint the doctor's own checks show, in English and Chinese, keyed
``<check id>.<reason>`` (devices: ``device``, ``door``, ``camera``, ``screen``). Checks other
features add (e.g. edge/sync/health.py) register their own texts the same way.

Commands, paths, config keys and values stay as they are in both languages: an installer types
them exactly as shown.
"""

from __future__ import annotations

from edge.core.i18n import Both, catalogue

TIMED_OUT = Both("timed out", "超时")
ALL_DOORS = Both("all", "所有门")
IN_MEMORY = Both("(in memory)", "（内存中的配置）")
STATES = {
    "online": Both("online", "在线"),
    "offline": Both("offline", "离线"),
    "degraded": Both("degraded", "部分故障"),
}

T = catalogue({
    "doctor.crashed": ("check crashed: {error}", "检查程序出错：{error}"),
    # -- config, database, disk, broker --------------------------------------------------
    "config.invalid": ("{error}", "{error}"),  # error: Both (messages.config_zh)
    "config.missing": ("no config", "没有配置文件"),
    "config.hint": (
        "fix the named keys, then `qilu-edge check-config -c {path}`",
        "改正上面指出的配置项，然后运行 `qilu-edge check-config -c {path}` 再检查一次",
    ),
    "config.ok": ("{source}: {n} devices", "{source}：共 {n} 台设备"),
    "database.none": ("no database yet at {path}", "{path} 还没有数据库"),
    "database.none_hint": (
        "start the daemon (it creates it) or run `qilu-edge db migrate`",
        "启动服务（会自动创建数据库），或运行 `qilu-edge db migrate`",
    ),
    "database.ok": ("{path}: integrity ok", "{path}：完整性检查通过"),
    "database.corrupt": ("{path}: {verdict}", "{path}：数据库损坏（{verdict}）"),
    "database.corrupt_hint": (
        "stop the daemon and restart it: a corrupt database is moved aside and a fresh one "
        "started; `qilu-edge db backup` first if it still opens",
        "停止服务再重新启动：损坏的数据库会被移到一旁并新建一个；如果它还能打开，"
        "先运行 `qilu-edge db backup` 备份",
    ),
    "disk.free": ("{mb} MB free at {where}", "{where} 剩余空间 {mb} MB"),
    "disk.read_only": (
        "{where} is on a read-only file system: nothing can be stored (a failing SD card is "
        "remounted read-only by the kernel)",
        "{where} 所在的文件系统是只读的：什么都存不下（SD 卡出错时系统会把它改成只读）",
    ),
    "disk.read_only_hint": (
        "`dmesg | grep -i error`; power off, `fsck` the card on another machine or replace "
        "it, restore from `qilu-edge db backup`",
        "运行 `dmesg | grep -i error` 查看；关机后在另一台电脑上 `fsck` 检查这张卡或换新卡，"
        "再用 `qilu-edge db backup` 的备份恢复",
    ),
    "database.read_only": (
        "{path}: cannot be opened on a read-only file system (not a sign of corruption)",
        "{path}：文件系统只读，数据库无法打开（不代表数据库损坏）",
    ),
    "disk.hint": (
        "free space on the SD card (old backups, logs) or use a larger card",
        "清理 SD 卡空间（旧备份、日志），或换一张更大的卡",
    ),
    "broker.off": (
        "MQTT disabled in config ([mqtt] enabled = false)",
        "配置中已关闭 MQTT（[mqtt] enabled = false）",
    ),
    "broker.unreachable": ("{host}:{port}: {error}", "连不上消息代理 {host}:{port}：{error}"),
    "broker.hint": (
        "`systemctl status mosquitto`; its listener is in "
        "/etc/mosquitto/conf.d/qilu-edge.conf ([mqtt] host/port must match)",
        "运行 `systemctl status mosquitto` 查看；监听地址在 "
        "/etc/mosquitto/conf.d/qilu-edge.conf（须与 [mqtt] host/port 一致）",
    ),
    "broker.ok": ("connected to {host}:{port}", "已连接 {host}:{port}"),
    # -- devices (door:<id>, camera:<id>, screen:<id>) -----------------------------------
    "device.disabled": ("disabled in config (enabled = false)", "配置中已停用（enabled = false）"),
    "device.timeout": (
        "{type}: no answer within the check's time", "{type}：在检查时限内没有应答"
    ),
    "device.no_driver": ("{type}: cannot start driver: {error}", "{type}：驱动无法启动：{error}"),
    "device.state": ("{type}: {state}", "{type}：{state}"),
    "device.state_reason": ("{type}: {state} ({reason})", "{type}：{state}（{reason}）"),
    "device.more": ("{first}; {more}", "{first}；{more}"),
    "door.hint": (
        "check the relay board's power, wiring and address (`qilu-edge modbus scan`)",
        "检查继电器板的电源、接线和地址（`qilu-edge modbus scan`）",
    ),
    "door.click_failed": ("click test failed: {error}", "开门测试失败：{error}"),
    "door.click_bad": ("click test: {why}", "开门测试：{why}"),
    "door.not_closed": ("relay did not close again", "继电器没有复位"),
    "door.click_no_readback": (
        "click test: pulse sent (board has no read-back; listen for it)",
        "开门测试：已发出脉冲（该板不能回读状态，请听继电器是否响）",
    ),
    "door.click_not_switched": (
        "click test: relay did not read back as switched",
        "开门测试：回读继电器状态未切换",
    ),
    "door.click_ok": ("click test: relay switched and closed", "开门测试：继电器已吸合并复位"),
    "camera.hint": (
        "check the camera's power, network and stream URL/credentials",
        "检查摄像头的电源、网络以及视频流地址和账号密码",
    ),
    "camera.no_frame_check": (
        "frame check not available for this driver", "此驱动不支持画面检查"
    ),
    "camera.no_frame": ("no frame within {seconds:g} s", "{seconds:g} 秒内没有收到画面"),
    "camera.frame": ("frame {w}x{h}", "画面 {w}x{h}"),
    "camera.frame_fps": ("frame {w}x{h}, {fps:.1f} fps", "画面 {w}x{h}，每秒 {fps:.1f} 帧"),
    "camera.face_skipped": (
        "{frame}; face check skipped: {why}", "{frame}；跳过人脸检查：{why}"
    ),
    "camera.no_face": ("{frame}; no face on a live frame", "{frame}；实时画面中没有人脸"),
    "camera.face": (
        "{frame}; face detected ({w:.0f}x{h:.0f} px, score {score:.2f})",
        "{frame}；检测到人脸（{w:.0f}x{h:.0f} 像素，得分 {score:.2f}）",
    ),
    "camera.no_face_hint": (
        "nobody in view? have someone stand where residents will stand and run the doctor "
        "again; if a face is there, check focus, lighting and the camera's angle",
        "画面里没人？请一个人站到住户通常站的位置，再检查一次；如果有人脸仍未检测到，"
        "请检查对焦、光线和摄像头角度",
    ),
    "camera.no_pipeline": (
        "the faces service has no pipeline (see `qilu-edge models`)",
        "人脸服务没有可用的识别流程（见 `qilu-edge models`）",
    ),
    "camera.pipeline_error": ("face pipeline unavailable: {error}", "人脸识别流程不可用：{error}"),
    "screen.hint": (
        "check the screen's power and network; open its player page",
        "检查屏幕的电源和网络；打开它的播放页面",
    ),
    "screen.key_hint": (
        "provision its key with `qilu-edge screens key {screen} --base {box_url}` and open"
        " the address it prints ({box_url}/screen/{screen}#key=...) in the screen's browser"
        " (kiosk mode); keep it on the network",
        "用 `qilu-edge screens key {screen} --base {box_url}` 生成屏幕密钥，在屏幕的浏览器"
        "（全屏模式）中打开它打印的地址（{box_url}/screen/{screen}#key=...），并保持联网",
    ),
    "screen.no_service": (
        "player check: screens service not running", "播放检查：屏幕服务没有运行"
    ),
    "screen.connected": ("player page connected ({n})", "播放页面已连接（{n} 个）"),
    "screen.reported": ("player page reported {ago:.0f} s ago", "播放页面 {ago:.0f} 秒前报告过"),
    "screen.never": (
        "player page not connected (never connected since the daemon started)",
        "播放页面未连接（服务启动以来从未连接）",
    ),
    "screen.gone": (
        "player page not connected ({ago:.0f} s ago)", "播放页面未连接（上次 {ago:.0f} 秒前）"
    ),
    "screen.needs_token": (
        "player check needs a [[api.tokens]] entry to ask the daemon",
        "播放检查需要配置 [[api.tokens]] 才能询问服务",
    ),
    "screen.http": ("daemon answered HTTP {status} at {url}", "服务在 {url} 返回 HTTP {status}"),
    "screen.no_daemon": (
        "cannot ask the daemon at {url} ({error})", "无法询问 {url} 上的服务（{error}）"
    ),
    "screen.start_daemon": (
        "start the daemon (`systemctl start qilu-edge`) and run the doctor again",
        "启动服务（`systemctl start qilu-edge`）后再检查一次",
    ),
    "screen.unknown": (
        "the daemon does not know this screen (restart it after config changes)",
        "服务不认识这块屏幕（修改配置后需要重启服务）",
    ),
    "screen.restart": ("systemctl restart qilu-edge", "重启服务：systemctl restart qilu-edge"),
    "screen.reporting": (
        "player page reporting (not connected right now)", "播放页面在报告（当前未连接）"
    ),
    "screen.not_connected": (
        "player page not connected (player {player})", "播放页面未连接（播放器状态 {player}）"
    ),
    # -- faces ---------------------------------------------------------------------------
    "models.off": (
        "face recognition off ([faces] enabled = false)",
        "人脸识别已关闭（[faces] enabled = false）",
    ),
    "models.timeout": ("`models verify` took over 120 s", "`models verify` 超过 120 秒未完成"),
    "models.ok": ("{line}", "模型校验通过：{line}"),
    "models.verified": ("verified", "已校验"),
    "models.failed": ("{line}", "模型校验失败：{line}"),
    "models.exit": ("`models verify` exited {code}", "`models verify` 退出码 {code}"),
    "models.hint": (
        "`qilu-edge models fetch` then `qilu-edge models verify`",
        "先运行 `qilu-edge models fetch`，再运行 `qilu-edge models verify`",
    ),
    "face_doors.fixed": (
        "fixed threshold {threshold} for {residents} residents: the stranger rate grows with "
        "the community",
        "{residents} 位住户使用固定阈值 {threshold}：陌生人误识率会随小区人数增加",
    ),
    "face_doors.fixed_hint": (
        "set [faces] target_fpir (stranger false-accepts per visit)",
        "请设置 [faces] target_fpir（每次来访的陌生人误识率目标）",
    ),
    "face_doors.door": (
        "{door}: 1/{visits:,} strangers per visit -> threshold {threshold:.3f}, residents let "
        "in ~{acceptance:.1%}",
        "{door}：每 {visits:,} 次陌生人来访误识 1 次 -> 阈值 {threshold:.3f}，"
        "住户通过率约 {acceptance:.1%}",
    ),
    "face_doors.summary": (
        "{residents} residents ({templates} templates); {doors}",
        "{residents} 位住户（{templates} 个人脸模板）；{doors}",
    ),
    "face_doors.fit": (
        "(scores: {scores}; the expected acceptance is fitted on {people} people's door-camera "
        "visits in the bench, so it is a rough guide: docs/faces.md)",
        "（评分方式：{scores}；住户通过率按基准（bench）开发集 {people} 人的门口摄像头"
        "来访拟合，仅供参考：docs/faces.md）",
    ),
    "face_doors.low_hint": (
        "{doors}: residents would often be refused at this target and size; raise the door's "
        "face_target_fpir, or keep its second_factor = \"auto\" (it then asks for a PIN or a "
        "tap on the phone)",
        "{doors}：在这个目标和人数下住户会经常被拒；请调高该门的 face_target_fpir，"
        "或保持 second_factor = \"auto\"（届时会要求输入开门密码或在手机上确认）",
    ),
    "face_templates.none": ("no face templates yet", "还没有人脸模板"),
    "face_templates.ok": (
        "{templates} templates, all embedded as {label}",
        "全部 {templates} 个人脸模板均按 {label} 生成",
    ),
    "face_templates.no_manifest": ("{error}", "{error}"),
    "face_load.no_camera": ("no door has a camera", "没有门配置摄像头"),
    "face_load.outside": (
        "known only inside the running box: the installer page's doctor, or "
        "GET /api/v1/status (services.access.face_load)",
        "只有运行中的盒子知道：请用安装页面的自检，或 "
        "GET /api/v1/status（services.access.face_load）",
    ),
    "face_load.unused": ("no face has been looked at yet", "还没有识别过人脸"),
    "face_load.over": (
        "{reason} (face thread busy {busy:.0%})",
        "{reason}（人脸线程占用 {busy:.0%}）",
    ),
    "face_load.over_hint": (
        "fewer or lower-resolution door cameras (a sub-stream: ONVIF min_width), a lower "
        "[access] sample_fps, or a faster box; doors stay safe but open later",
        "减少门禁摄像头或降低分辨率（使用子码流：ONVIF min_width）、调低 [access] sample_fps，"
        "或换性能更好的盒子；门仍然安全，只是开得慢些",
    ),
    "face_load.ok": (
        "keeping up (face thread busy {busy:.0%})",
        "跟得上（人脸线程占用 {busy:.0%}）",
    ),
    # -- cloud ---------------------------------------------------------------------------
    "sync.off": (
        "cloud sync off ([sync] enabled = false)", "云同步已关闭（[sync] enabled = false）"
    ),
    "provisioned.hint": (
        "`qilu-edge provision {force}{cfg}--cloud URL --claim CODE` with a claim code from the "
        "ops console, or the installer page (cloud URL + claim code)",
        "用运维控制台生成的认领码运行 `qilu-edge provision {force}{cfg}--cloud URL --claim CODE`，"
        "或在安装页面填写云端地址和认领码",
    ),
    "provisioned.unreadable": (
        "{path}: unreadable identity ({error})", "{path}：身份文件无法读取（{error}）"
    ),
    "provisioned.denied": ("{path}: permission denied", "{path}：没有读取权限"),
    "provisioned.denied_hint": (
        "run the doctor as the qilu-edge user or root", "请以 qilu-edge 用户或 root 运行检查"
    ),
    "provisioned.missing": (
        "not provisioned: no cloud identity at {path}", "尚未注册到云端：{path} 没有云端身份"
    ),
    "provisioned.loose": (
        "{path} has mode {mode}: the box secret is readable by others",
        "{path} 的权限是 {mode}：本机密钥可被他人读取",
    ),
    "provisioned.loose_hint": ("chmod 600 {path}", "运行 chmod 600 {path}"),
    "provisioned.owner": (
        "{path} belongs to {owner}, the data folder to {daemon}: the daemon cannot read it",
        "{path} 属于 {owner}，数据目录属于 {daemon}：服务读不到本机身份，无法同步",
    ),
    "provisioned.owner_hint": (
        "chown {daemon} {path}, then systemctl restart qilu-edge",
        "运行 chown {daemon} {path}，然后 systemctl restart qilu-edge",
    ),
    "provisioned.ok": (
        "{box_id} at {cloud} ({path}, 0600)", "{box_id}，云端 {cloud}（{path}，0600）"
    ),
    "provisioned.ok_area": (
        "{box_id} in {area} at {cloud} ({path}, 0600)",
        "{box_id}，位于 {area}，云端 {cloud}（{path}，0600）",
    ),
    "cloud.not_provisioned": (
        "not provisioned (see the provisioned check)", "尚未注册（见“已注册”检查）"
    ),
    "cloud.cert_clock": (
        "{cloud}: TLS certificate refused ({reason}) because this box's clock is {skew:+.0f} s "
        "off the cloud's",
        "{cloud}：TLS 证书校验失败（{reason}），原因是本机时钟与云端相差 {skew:+.0f} 秒",
    ),
    "cloud.cert_clock_hint": (
        "set the clock (see the clock check), then run the doctor again",
        "先校准时钟（见“时钟偏差”检查），再运行一次检查",
    ),
    "cloud.unreachable": ("cloud unreachable: {cloud}: {reason}", "连不上云端 {cloud}：{reason}"),
    "cloud.net_hint": (
        "check the box's network, DNS and the cloud URL (curl CLOUD/healthz); "
        "the box keeps working offline and uploads later",
        "检查本机网络、DNS 和云端地址（curl CLOUD/healthz）；断网时本机照常工作，联网后再上传",
    ),
    "cloud.ok": (
        "{cloud}: authenticated as {box_id} ({rtt:.0f} ms)",
        "{cloud}：已认证为 {box_id}（{rtt:.0f} ms）",
    ),
    "cloud.revoked": (
        "{cloud}: box {box_id} is revoked by the cloud", "{cloud}：云端已吊销本机 {box_id}"
    ),
    "cloud.revoked_hint": (
        "ask ops for a new claim code, then {reprovision}",
        "请向运维要一个新的认领码，然后{reprovision}",
    ),
    "cloud.refused": (
        "{cloud}: the cloud refused this box's identity ({error})",
        "{cloud}：云端拒绝了本机的身份（{error}）",
    ),
    "cloud.refused_hint": (
        "the secret does not match the cloud's (an old backup? another box's file?): "
        "get a new claim code, then {reprovision}",
        "本机密钥与云端不符（旧备份？别的盒子的文件？）：请要一个新的认领码，然后{reprovision}",
    ),
    "cloud.server_error": (
        "{cloud}: cloud error HTTP {status} ({error})", "{cloud}：云端出错 HTTP {status}（{error}）"
    ),
    "cloud.unsigned": (
        "{cloud} answers without its command signature: this box refuses every command from it",
        "{cloud} 的应答没有指令签名：本盒子将拒绝它发来的所有指令",
    ),
    "cloud.unsigned_hint": (
        "upgrade the cloud (it signs feed answers since this version), or check for a proxy"
        " or someone on the path that changes answers",
        "请升级云端（新版本会签名下发的指令），或检查中间是否有代理或他人篡改应答",
    ),
    "transport.http": (
        "{cloud} is plain http://: uploads and resident pages cross the network unencrypted",
        "{cloud} 使用明文 http://：上传数据和居民页面以未加密方式传输",
    ),
    "transport.no_verify": (
        "[sync] tls_verify = false: the cloud's certificate is not checked",
        "[sync] tls_verify = false：未校验云端证书",
    ),
    "transport.both": (
        "{cloud} is plain http:// and [sync] tls_verify = false",
        "{cloud} 使用明文 http://，且 [sync] tls_verify = false",
    ),
    "transport.hint": (
        "use an https:// cloud URL (`qilu-edge provision --force`) with tls_verify = true"
        " (ca_file for a private CA)",
        "请使用 https:// 云端地址（`qilu-edge provision --force`）并设 tls_verify = true"
        "（私有 CA 用 ca_file）",
    ),
    "transport.ok": (
        "{cloud}: encrypted and verified (or on this machine)",
        "{cloud}：已加密并校验（或在本机）",
    ),
    "cloud.unexpected": (
        "{cloud}: HTTP {status} ({error}) — is this the Qilu cloud URL?",
        "{cloud}：HTTP {status}（{error}）——这是齐鲁云端的地址吗？",
    ),
    "clock.no_time": (
        "no time from the cloud (see the cloud check)", "没有从云端得到时间（见“云端可达”检查）"
    ),
    "clock.skew": (
        "box clock is {skew:+.1f} s against the cloud (warn > {warn:g} s, fail > {fail:g} s)",
        "本机时钟与云端相差 {skew:+.1f} 秒（超过 {warn:g} 秒警告，超过 {fail:g} 秒失败）",
    ),
    "clock.hint": (
        "enable NTP: `timedatectl set-ntp true`; check `timedatectl timesync-status`",
        "开启网络校时：`timedatectl set-ntp true`；用 `timedatectl timesync-status` 查看",
    ),
    "relay.off": (
        "portal relay off ([portal] relay = false)", "在外访问已关闭（[portal] relay = false）"
    ),
    "relay.no_cloud": (
        "no cloud to relay through (see the cloud check)", "没有可用的云端转发（见“云端可达”检查）"
    ),
    "relay.old_cloud": (
        "{cloud} does not relay resident pages (an older cloud version?)",
        "{cloud} 不转发住户页面（云端版本较旧？）",
    ),
    "relay.old_cloud_hint": (
        "residents use the portal on the community Wi-Fi only until the cloud is updated",
        "云端更新之前，住户只能在小区 Wi-Fi 内使用住户页面",
    ),
    "relay.no_socket": (
        "{away} answers, but this box has no relay socket open to the cloud",
        "{away} 有应答，但本机没有与云端建立转发连接",
    ),
    "relay.no_socket_hint": (
        "is the daemon running (`systemctl status qilu-edge`)? Its status shows "
        "services.portal_relay.last_error; a proxy must allow WebSockets to the cloud",
        "服务在运行吗（`systemctl status qilu-edge`）？它的状态里 "
        "services.portal_relay.last_error 写明原因；代理服务器须允许到云端的 WebSocket",
    ),
    "relay.ok": (
        "residents away from home reach this box at {away}", "住户在外可通过 {away} 访问本机"
    ),
    "relay.unexpected": (
        "{away}: unexpected HTTP {entry}/{page} from the relay",
        "{away}：转发返回了意外的 HTTP {entry}/{page}",
    ),
})  # fmt: skip
