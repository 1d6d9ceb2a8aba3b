"""What the box says about face templates embedded otherwise than it embeds faces now
(:func:`edge.faces.store.embedding_mismatch`), in English and Chinese: one text for the
doctor's ``face_templates`` check, the faces status and the log."""

from __future__ import annotations

from typing import Any

from edge.core.i18n import Msg, catalogue

T = catalogue({
    "face_templates.mismatch": (
        "{other} of {templates} templates were not embedded as the box embeds faces now "
        "({label}, [faces] flip = {flip}): {models}; {stale} residents have no template of "
        "the current kind: {names}",
        "{templates} 个人脸模板中有 {other} 个不是按本机当前方式（{label}，[faces] flip = "
        "{flip}）生成的：{models}；其中 {stale} 位住户没有当前方式的模板：{names}",
    ),
    "face_templates.mismatch_none_stale": (
        "{other} of {templates} templates were not embedded as the box embeds faces now "
        "({label}, [faces] flip = {flip}): {models}; every resident also has a template of "
        "the current kind",
        "{templates} 个人脸模板中有 {other} 个不是按本机当前方式（{label}，[faces] flip = "
        "{flip}）生成的：{models}；每位住户都已有当前方式的模板",
    ),
    "face_templates.both_hints": ("{hints}", "{hints}"),
    "face_templates.more": ("{names} and {more} more", "{names} 等（另有 {more} 位）"),
    "face_templates.flip_hint": (
        "the {n} templates of the other flip setting still match, at the same stranger risk "
        "(docs/faces.md); to use the current setting for everyone, enrol those residents "
        "again (`qilu-edge resident enroll ID PHOTO...` or the enrolment API): the box keeps "
        "no enrolment photos, so it cannot embed them again by itself; or set [faces] flip = "
        "{previous} again",
        "另一种 flip 设置生成的 {n} 个模板仍可匹配，陌生人误识风险不变（docs/faces.md）；"
        "如需全部使用当前设置，请为这些住户重新录入人脸（`qilu-edge resident enroll ID "
        "PHOTO...` 或录入接口）：本机不保存录入照片，无法自行重新生成；或把 [faces] flip "
        "改回 {previous}",
    ),
    "face_templates.model_hint": (
        "{n} templates were made by another model file and do not match reliably: enrol "
        "those residents again (`qilu-edge resident enroll ID PHOTO...` or the enrolment "
        "API); the box keeps no enrolment photos, so it cannot embed them again by itself",
        "{n} 个模板由另一个模型文件生成，无法可靠匹配：请为这些住户重新录入人脸"
        "（`qilu-edge resident enroll ID PHOTO...` 或录入接口）；本机不保存录入照片，"
        "无法自行重新生成",
    ),
})


def mismatch_texts(m: dict[str, Any], flip: bool) -> tuple[Msg, Msg]:
    """(what is wrong, what to do) for an embedding mismatch ``m``; ``flip``: the current
    [faces] flip setting."""
    models = ", ".join(f"{c} {k}" for k, c in m["by_model"].items())
    common = {"other": m["other_templates"], "templates": m["templates"],
              "label": m["setting"], "flip": str(flip).lower(), "models": models}  # fmt: skip
    if m["residents_without_current"]:
        names: Any = ", ".join(m["residents_to_enrol_again"])
        more = m["residents_without_current"] - len(m["residents_to_enrol_again"])
        if more > 0:
            names = T("face_templates.more", names=names, more=more)
        detail = T("face_templates.mismatch", stale=m["residents_without_current"],
                   names=names, **common)  # fmt: skip
    else:
        detail = T("face_templates.mismatch_none_stale", **common)
    hints = []
    if m["other_flip_setting"]:
        hints.append(T("face_templates.flip_hint", n=m["other_flip_setting"],
                       previous=str(not flip).lower()))  # fmt: skip
    if m["other_model"]:
        hints.append(T("face_templates.model_hint", n=m["other_model"]))
    hint = hints[0] if len(hints) == 1 else T("face_templates.both_hints", hints=hints)
    return detail, hint
