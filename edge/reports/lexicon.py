"""Community-domain Chinese lexicon: sentiment words and urgency rules.

Off-the-shelf Chinese sentiment models are trained on shopping reviews; in a community a
plain fault report ("路灯不亮了，请修一下") is neutral, a thank-you to the plumber is
positive, and anger shows in words like 又, 一直没人管, 受不了. These lists encode that.
"""

from __future__ import annotations

import re

from common.textlexicon import INTENSIFIERS, NEGATIVE, NEGATORS, POLITE, POSITIVE

__all__ = ["INTENSIFIERS", "NEGATIVE", "NEGATORS", "POLITE", "POSITIVE"]


# --- urgency ----------------------------------------------------------------------------
# Immediate: life or property in danger right now. These patterns are deliberately wide:
# missing an emergency is far worse than an extra alert (target: recall 100 %).
IMMEDIATE = [
    r"着火|起火|失火|火灾(?!隐患)|火势|大火|烧起来|火扑不灭|爆炸|爆燃",
    r"冒.{0,3}(烟|火花)|黑烟|浓烟|火花",
    r"(燃气|煤气|天然气|液化气).{0,6}(泄漏|漏|味)|漏气|煤气味|燃气味|气味.{0,4}(燃气|煤气)",
    r"泄漏报警",
    r"(困|关|卡)(在|住|着).{0,8}电梯|电梯.{0,12}(困|卡住|卡在|关在|下坠|里面有人|出不来)",
    r"被困|困着|困住",
    r"摔倒|跌倒|滚下来|摔下|晕倒|昏倒|昏迷|没有反应|没反应了|不省人事|抽搐|心脏病|休克",
    r"流血|满脸是血|骨折|受伤|撞倒|被车撞|躺着不动",
    r"触电|电到人",
    r"持刀|拿着刀|拿刀|砍人|追砍|殴打|打架|斗殴|打人|行凶|抢劫",
    r"跳楼|往下跳|轻生|自杀|要跳",
    r"掉进|落水|溺水|救命|救人|快来人|快报警|报警",
    r"(孩子|小孩|老人|儿子|女儿).{0,8}(找不到|走失|不见了|丢了)",
]
HIGH = [
    r"隐患|危险|裸露|飞线|私拉|电线",
    r"消防通道|安全出口|防火门|灭火器|喷淋",
    r"井盖.{0,3}(丢|没了|不见|没盖)|没盖",
    r"高空抛物|砸到|砸伤|掉下来|坠落|松动|倒塌|倾斜|要倒|快倒",
    r"被偷|盗窃|小偷|陌生人|徘徊|撬",
    r"滑倒|护栏|咬|大狗",
    r"配电|变压器|焦糊|电箱|漏电",
    r"积水.{0,10}(配电|淹|电)|淹到",
    r"电梯.{0,3}(停运|夹|异响|抖动|故障|不动|停了)|夹人",
    r"停水|停电|断水|断电",
    r"门.{0,6}(一直开着|顶着)|围墙.{0,4}倒|煤气罐",
]
_IMMEDIATE = [re.compile(p) for p in IMMEDIATE]
_HIGH = [re.compile(p) for p in HIGH]
# Past, resolved events in a thank-you ("帮我找回了走失的孩子") are not emergencies.
RESOLVED_THANKS = re.compile(r"(感谢|谢谢|表扬|点赞|好人|锦旗)")
STILL_URGENT = re.compile(r"快|赶紧|马上|立刻|救命|正在|！|!")


# "万一着火", "担心起火": a feared emergency is a hazard (high), not one happening now.
HYPOTHETICAL = re.compile(r"(万一|如果|要是|以防|防止|担心|避免|预防|容易)$")


def urgency_hits(text: str) -> tuple[list[str], list[str]]:
    """The matched immediate and high patterns' texts (evidence for the alert)."""
    imm, feared = [], []
    for r in _IMMEDIATE:
        for m in r.finditer(text):
            if HYPOTHETICAL.search(text[max(0, m.start() - 4) : m.start()]):
                feared.append(m.group(0))
            else:
                imm.append(m.group(0))
                break
    high = feared + [h.group(0) for r in _HIGH if (h := r.search(text))]
    return imm, high
