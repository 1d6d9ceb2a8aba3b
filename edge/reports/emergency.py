"""The emergency detector: recall first, separate from the topic classifier, can only raise.

Two independent signals per message:
- rules per emergency type (fire/smoke, gas, flooding, medical, violence/injury, trapped,
  missing vulnerable person, falling object, intruder, electrocution, self-harm), written
  from the label guide (docs/report-labels.md) as *situations* (smoke coming out of a door,
  a hissing pipe, water pouring into a home, an old man on the floor who cannot get up), not
  as the textbook words alone; a match in a feared/hypothetical ("万一着火"), past-and-thanked
  or plainly unrelated sense ("火锅", "燃气费", "消防演练") does not count;
- the ``emergency`` head of the text model (edge/reports/textmodel.py): P(immediate) from
  character n-grams, trained with balanced classes.

Decision (thresholds chosen by cross-validation on the training corpus, bench/text.py):
``immediate`` when the model is sure (p ≥ P_SURE) or a rule fires and the model agrees a little
(p ≥ P_RULE); ``possible_emergency`` — a person confirms within minutes — when either signal
alone says so (a rule, or p ≥ P_POSSIBLE); otherwise nothing. Every verdict carries its
evidence: the matched phrases with their type, and the n-grams that pushed the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Thresholds on the model's P(immediate); see bench/text.py --tune for how they were chosen.
P_SURE = 0.80
P_RULE = 0.25
P_POSSIBLE = 0.35

_TYPES: dict[str, list[str]] = {
    "fire": [
        r"着火|起火|失火|火灾|火势|大火|明火|火苗|火光|红光|火星子?|烧(起来|着了|着|了起来)|在烧|"
        r"烧焦|焦糊|糊味|烧糊|烧橡胶|烧塑料|爆炸|爆燃|炸了|噼里啪啦",
        r"冒.{0,4}(烟|火)|(黑|白|浓|青)烟|烟.{0,4}(冒|往外|钻|飘|窜|呛|越来越)|呛得|"
        r"烟(报|感|雾报警)器?.{0,6}(响|叫)|(报警器|烟感).{0,4}(响|叫)",
    ],
    "gas": [
        r"(燃气|煤气|天然气|然气|液化气|沼气).{0,8}(泄漏|漏|味|嘶|呲|响)|漏气|"
        r"(臭鸡蛋|煤气|燃气|天然气)(那种|似的|一样|的)?味",
        r"(嘶嘶|呲呲|丝丝|滋滋|哧哧).{0,10}(响|声|味)|(味|气味).{0,10}(嘶嘶|呲呲)",
    ],
    "flood": [
        r"(水管|管子|管道|水表|阀门|暖气片?|热水器|水箱).{0,6}(爆|崩|裂|炸|断)|爆管",
        r"(水|污水).{0,8}(往|向).{0,6}(屋|家|房|室|里).{0,4}(灌|流|涌|冒|漫|淌|进)|"
        r"(淹|泡)(了|到|着).{0,6}(家|屋|房|客厅|卧室|床|电器|插座|车)|"
        r"(客厅|卧室|屋里|家里|一楼).{0,6}(全|都)?(淹|进水|是水)|"
        r"(水位|水).{0,6}(没过|到了?|齐)(脚|膝|腿|腰|小腿)|大量进水|倒灌",
    ],
    "medical": [
        r"胸(口|闷|痛|疼)|心(口|脏).{0,4}(疼|痛|难受|不舒服)|心梗|脑梗|中风|心脏病|"
        r"喘不(上|过)气|呼吸困难|上不来气|憋得慌|透不过气",
        r"(晕|昏)(倒|过去|迷|厥)|不省人事|叫不醒|没(有)?反应|没(了)?意识|抽搐|口吐白沫|休克|"
        r"(倒|躺|趴|瘫)(在)?(地上|地下|楼道|门口).{0,10}(不动|起不来|动不了|没反应)?|"
        r"(摔|跌|滑)(倒|了一跤|下去|下来).{0,12}(起不来|动不了|站不起|爬不起|疼得)|"
        r"起不来|站不起来|爬不起来|动不了了|脸色(发紫|发白|铁青)|嘴唇发紫|大出血|"
        r"(一个人|独自|独居).{0,12}(不舒服|难受|晕|起不来|发烧|疼)|急救|120",
    ],
    "violence": [
        r"打(起来|人|架)|斗殴|殴打|行凶|抢劫|砍人|追砍|捅(人|了)|持刀|(拿|提|举|掏).{0,3}(刀|棍|棒|砖)|"
        r"动手了|打得.{0,6}(血|头破|鼻青)|"
        r"(流|出|是|全是|满脸|一地|见)血|头破血流|受伤|被(打|砍|捅|撞)|撞倒|被车撞|骨折",
    ],
    "trapped": [
        r"(困|关|卡|锁)(在|住|着).{0,10}(电梯|里面|里边|屋里|房间|阳台|厕所|卫生间)|"
        r"电梯.{0,12}(困|卡住|卡在|关在|下坠|里面有人|里有人|出不来|(停|卡)在.{0,4}(中间|半))|"
        r"(在|困)(电梯)?里(面|边).{0,8}(出不去|出不来|按铃|喊|拍门)|"
        r"被困|困住|困在|出不来了?|打不开.{0,6}(孩子|老人|人)在里",
    ],
    "missing": [
        r"(孩子|小孩|儿子|女儿|闺女|孙子|孙女|娃|宝宝|老人|老爷子|老太太|老头|老太|大爷|大妈|奶奶|"
        r"爷爷|姥姥|姥爷|外婆|外公|母亲|父亲|俺爹|俺娘|我妈|我爸|婆婆|公公).{0,30}"
        r"(找不到|找不着|走丢|走失|不见了|丢了|没回来|没回家|联系不上|没影|跑丢)|"
        r"(走失|走丢)|老年痴呆|阿尔茨海默|糊涂.{0,20}(出去|出门|没回|不见|走)|"
        r"(到现在|天黑了?|一夜|一晚上).{0,6}(还|都|也)?没(回来|回家|找到)",
    ],
    "falling": [
        r"(摇摇欲坠|晃晃悠悠|悬着|吊着|挂着|快掉|要掉|往下掉|随时.{0,4}(掉|砸|塌))|"
        r"(空调外机|广告牌|招牌|花盆|玻璃|窗户|外墙|瓷砖|树枝|大树|脚手架|冰溜子|冰凌).{0,10}"
        r"(松|晃|掉|砸|塌|歪|倒|裂|悬)|高空抛物|往下(扔|砸|丢)",
    ],
    "intruder": [
        r"(撬|拧|扭|拽|推|试).{0,4}(门|锁|把手)|挨(家|户|门)|一家一家.{0,6}(试|敲|拧)|"
        r"(陌生|可疑).{0,4}(人|男|女).{0,16}(门|楼道|单元|翻|跟|进)|翻(墙|窗|阳台)|"
        r"(小偷|贼).{0,6}(在|正|进)|入室|有人(在)?(撬|偷)|跟踪",
    ],
    "electric": [
        r"触电|电到人|被电(了|到|击)|电击|"
        r"(电线|电缆|插座|电箱|配电).{0,12}(水|泡|淹|打火|冒火|火花|火星|冒烟|掉)|"
        r"(水|积水).{0,10}(电线|电缆|插座|带电|漏电)|漏电|(电线|电缆).{0,6}(断|掉|垂|耷拉)",
    ],
    "self_harm": [
        r"跳楼|往下跳|要跳|想跳|轻生|自杀|不想活|寻死|割腕|站在(楼顶|天台|窗台|阳台)|"
        r"(楼顶|天台|窗台|顶楼).{0,10}(坐|站|爬)",
    ],
}
_COMPILED = {t: [re.compile(p) for p in ps] for t, ps in _TYPES.items()}

# Words that contain an alarming character but name something harmless.
_HARMLESS = re.compile(
    r"火锅|火车|火腿|火柴|火龙果|上火|火爆|火气|发火|恼火|火箭|烟花爆竹|烟酒|香烟|抽烟|烟头|"
    r"油烟|烟味|烟囱|燃气费|煤气费|燃气卡|燃气公司电话|燃气表(怎么|如何|在哪)|天然气费|"
    r"消防演练|演练|演习|火灾(隐患|预防|知识)|防火(知识|宣传)|急救(培训|知识|包|箱)|"
    r"血压|献血|验血|抽血|打起来(很|挺|不)|打架子鼓"
)
# "万一着火", "担心漏气": a feared emergency is a hazard, not one happening now.
_FEARED = re.compile(r"(万一|如果|要是|假如|以防|防止|担心|怕|避免|预防|容易|会不会|可能会|小心)$")
# A past event in a thank-you or a report about yesterday, with nothing still going on.
_PAST = re.compile(r"感谢|谢谢|表扬|点赞|好人|锦旗|昨天|前天|上次|上周|上个月|之前|那天|去年")
_NOW = re.compile(r"现在|正在|还在|马上|赶紧|快来|快点|立刻|立即|救命|急|！|!|😭|🆘|求")


@dataclass
class Verdict:
    level: str  # immediate | possible_emergency | none
    probability: float  # the model's P(immediate)
    types: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # matched phrases, then model n-grams


def rule_hits(text: str) -> list[tuple[str, str]]:
    """(type, matched phrase) for each emergency pattern found in a current, literal sense."""
    masked = _HARMLESS.sub(lambda m: "＿" * len(m.group(0)), text)
    past = bool(_PAST.search(text)) and not _NOW.search(text)
    hits = []
    for kind, patterns in _COMPILED.items():
        for r in patterns:
            for m in r.finditer(masked):
                if _FEARED.search(masked[max(0, m.start() - 5) : m.start()]):
                    continue
                if past:
                    continue
                hits.append((kind, m.group(0)))
                break
    return hits


def decide(text: str, p: float, model_words: list[str]) -> Verdict:
    hits = rule_hits(text)
    types = sorted({k for k, _ in hits})
    evidence = [f"{k}:{w}" for k, w in hits] + [f"model:{w}" for w in model_words]
    if p >= P_SURE or (hits and p >= P_RULE):
        level = "immediate"
    elif hits or p >= P_POSSIBLE:
        level = "possible_emergency"
    else:
        return Verdict("none", p)
    return Verdict(level, p, types, evidence)
