"""The emergency detector on situations described without textbook keywords, and on alarming
words that are no emergency (docs/report-labels.md). Sentences written for this test."""

from __future__ import annotations

import pytest

from common.textmodel import normalise
from edge.reports import emergency
from edge.reports.analyze import Analyzer, combine

DESCRIBED = {
    "fire": "隔壁门缝里一直往外飘烟，一股烧塑料的味儿，敲门没人应",
    "gas": "厨房里一股臭鸡蛋味，灶台那边还有嘶嘶的声音",
    "flood": "楼上的管子崩了，水顺着墙往我家里灌，地上已经没过脚面了",
    "medical": "我爸刚才捂着胸口说喘不上气，脸都白了，就他一个人在家",
    "violence": "楼下两个人拿着砖头互相砸，有一个头上全是血",
    "trapped": "电梯停在两层中间不动了，我和孩子在里面按铃没人应",
    "missing": "俺娘有点糊涂，下午出门遛弯，到现在天黑了还没回来",
    "falling": "3号楼顶上的广告牌被风刮得晃晃悠悠，下面就是小学生放学走的路",
    "intruder": "有个戴帽子的男的在楼道里一家一家拧门把手",
    "electric": "暴雨后一根电线掉在积水里，几个小孩在旁边踩水玩",
    "self_harm": "有个小伙子坐在天台边上哭，说不想活了",
}
HARMLESS = [
    "火锅店开业了，欢迎大家来尝尝",
    "燃气费怎么交，在哪里交",
    "消防演练是几点开始",
    "感谢上次保安帮我灭火，太及时了",
    "楼下烧烤店的油烟太大了，能不能管管",
    "血压计在社区卫生站能借吗",
]


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.mark.parametrize("kind", sorted(DESCRIBED))
def test_each_emergency_type_is_raised_with_its_evidence(analyzer: Analyzer, kind: str) -> None:
    a = analyzer.analyze(DESCRIBED[kind])
    assert a.urgency == "immediate" or a.possible_emergency, a
    assert a.urgency_reasons, "an alert carries the words that triggered it"
    assert kind in emergency.decide(DESCRIBED[kind], 0.0, []).types  # the rule of its own type


@pytest.mark.parametrize("text", HARMLESS)
def test_alarming_words_that_are_no_emergency_stay_calm(analyzer: Analyzer, text: str) -> None:
    a = analyzer.analyze(text)
    assert a.urgency in ("low", "normal") and not a.possible_emergency, a
    assert emergency.rule_hits(text) == []


def test_feared_or_past_emergencies_are_not_happening_now(analyzer: Analyzer) -> None:
    assert analyzer.analyze("楼道里堆满杂物，万一着火就麻烦了").urgency != "immediate"
    assert emergency.rule_hits("担心煤气泄漏，能来检查一下吗") == []
    assert emergency.rule_hits("昨天那个着火的事谢谢保安") == []
    assert emergency.rule_hits("楼道里着火了，快来人") != []


def test_detector_only_raises() -> None:
    """A sure model raises without a rule; a rule with a doubtful model asks a person;
    nothing lowers an urgency (decide never returns a level below its inputs)."""
    assert emergency.decide("有情况", 0.95, ["情况"]).level == "immediate"
    doubt = emergency.decide("电梯停在两层中间不动了", 0.01, [])
    assert doubt.level == "possible_emergency" and doubt.types == ["trapped"]
    assert emergency.decide("路灯坏了", 0.01, []).level == "none"


@pytest.mark.parametrize(("typed", "kind"), [
    ("zhao huo le 3 dong kuai lai ren", "fire"),  # pinyin without the IME
    ("楼到里冒眼了", "fire"),  # speech recognition: 楼道 → 楼到, 冒烟 → 冒眼
    ("厨房里一股酶气的为道", "gas"),  # 煤气 → 酶气, 味道 → 为道
    ("rq泄露了 整个单元都是味", "gas"),
    ("俺爹晕到了 叫不醒", "medical"),
    # traditional characters (a phone on a traditional IME, a forwarded message)
    ("廚房裡一股煤氣味 是不是漏氣了", "gas"),
    ("樓道裡全是煙 門縫往外冒黑煙", "fire"),
    ("電梯卡在兩層中間 孩子在裡面哭", "trapped"),
])
def test_typos_homophones_and_pinyin_of_emergency_words(typed: str, kind: str) -> None:
    assert kind in {k for k, _ in emergency.rule_hits(typed)}, normalise(typed)


def test_canonical_spelling_leaves_ordinary_words_alone() -> None:
    assert normalise("眼睛不舒服，就明天再说吧") == "眼睛不舒服,就明天再说吧"
    assert normalise("qrcode 扫不出来") == "qrcode 扫不出来"  # no "rq" inside a word
    # simplified text is left as typed: OpenCC's phrase table would make this 电梯一坯
    assert normalise("电梯一坏她就下不了楼") == "电梯一坏她就下不了楼"


def test_denied_resolved_and_other_clause_hits() -> None:
    assert emergency.rule_hits("灶打不着 不漏气 也没味儿") == []  # denied
    assert emergency.rule_hits("烟雾报警器响了 是煎糊了 没事了") == []  # the scare is over
    assert emergency.rule_hits("楼上吵得跟打架似的") == []  # a simile
    # An enquiry first, then a gas smell now: the enquiry does not hide the emergency.
    hits = emergency.rule_hits("想问下燃气费怎么交 对了 隔壁门口燃气味特别重 敲门没人")
    assert "gas" in {k for k, _ in hits}


@pytest.mark.parametrize("text", [
    "谁家的花盆掉俺家阳台上了，没碎，来拿回去吧",  # a pick-up notice
    "楼道烟感半夜一直嘀嘀响 没有烟 应该是没电了",  # an alarm that needs a battery
    "隔壁在阳台上用炭火烤串，烟往上飘，呛得不行",  # a neighbour's barbecue
    "群里谁说小区要着火了 别吓人好吧 是谣言",  # a rumour
])
def test_messages_that_say_no_emergency_now_only_ask_a_person(text: str) -> None:
    """Demoted, not dropped: a model surer than P_SURE (but short of P_SOFT) only flags them
    for a person to confirm unless a strong rule fires too; the same wording without the
    disclaimer is raised."""
    assert emergency.soft(text)
    assert emergency.P_SURE < emergency.P_SOFT - 0.05
    for p in (0.3, emergency.P_SOFT - 0.05):
        v = emergency.decide(text, p, [])
        assert v.level != "immediate" or (v.types and set(v.types) - emergency.WEAK), (p, v)
    assert emergency.decide(text, emergency.P_SOFT - 0.05, []).level != "none"
    # Only a model sure beyond P_SOFT raises a soft message on its own.
    assert emergency.decide(text, emergency.P_SOFT, []).level == "immediate"
    assert not emergency.soft("本来是来表扬保洁的，但是现在楼道里全是烟")
    assert emergency.decide("楼道里全是烟 看不清 快来", 0.5, []).level == "immediate"


@pytest.mark.parametrize(("text", "kind"), [
    ("电梯停半道上了，俺和孙子在里头，门扒不开", "trapped"),
    ("广场那边一群人围着一个老头打 老头趴地上了", "violence"),
    ("俺家孩子从上铺摔下来了，磕着后脑勺，这会迷迷瞪瞪的", "medical"),
    ("楼下那家门缝里一直往外飘味道 那个味儿跟煤气一样", "gas"),
    ("俺家厨房那个管子突然呲开了，水喷得满屋都是", "flood"),
])
def test_emergencies_without_the_textbook_word(text: str, kind: str) -> None:
    assert kind in {k for k, _ in emergency.rule_hits(text)}


def test_everyday_words_that_only_look_like_a_rule() -> None:
    assert emergency.rule_hits("楼下商户排烟管道直对住户窗户，油烟进入室内") == []  # 进入室内
    assert emergency.rule_hits("球踢俺家院里来了，别翻墙哈，走门") == []  # a denial: 别
    assert emergency.rule_hits("瓦掉下来一块砸在车棚上，幸亏木砸着人") == []  # a near miss
    assert emergency.rule_hits("今天的外卖辣到我冒烟了") == []  # a figure of speech


@pytest.mark.parametrize(("text", "polarity"), [
    ("感谢物业的“高效” 报修十天了还没人影", "negative"),  # sarcasm in quotes
    ("谢谢恁了 可是俺家暖气还是拔凉拔凉的 三天了", "negative"),  # 谢谢…可是 + a complaint
    ("麻烦你们派个师傅来看看水龙头 有点滴水 谢谢了", "neutral"),  # a polite request
])
def test_sarcasm_thanks_but_and_politeness(analyzer: Analyzer, text: str, polarity: str) -> None:
    assert analyzer.analyze(text).polarity == polarity


def test_an_emergency_after_a_change_of_topic() -> None:
    """Praise or a joke before "另外…" says nothing about what follows; a run-on message
    without punctuation still splits its enquiry from the emergency; a long message is read
    sentence by sentence."""
    praise_then_smoke = "先表扬一下门卫大哥，天天笑呵呵的。另外二号楼地下车库门口往外冒黑烟"
    assert not emergency.soft(praise_then_smoke)
    assert emergency.soft("先说一下楼道冒烟的事，后来发现是虚惊一场")
    run_on = "我想咨询一下停车费怎么交刚才小区门口有个老人被车撞了躺着不动"
    assert {"violence"} <= {k for k, _ in emergency.rule_hits(run_on)}
    long = "物业费的发票什么时候能开，我等了一个礼拜了。还有就是俺家老头子刚才摔了一跤起不来了"
    assert len(emergency.windows(long)) == 2
    assert emergency.windows("楼道灯坏了") == []


def test_a_hazard_read_as_no_more_than_normal_takes_the_next_category() -> None:
    """docs/report-labels.md: a safety hazard is at least `high`."""
    cats = {"safety_hazard": 0.5, "facilities_repair": 0.4, "other": 0.1}
    codes = list(cats)
    normal = combine("楼道的扶手有点松", cats, {"neutral": 1.0}, {"normal": 0.9, "high": 0.1},
                     0.0, [], codes)
    assert (normal.category, normal.urgency) == ("facilities_repair", "normal")
    high = combine("楼道的扶手有点松", cats, {"neutral": 1.0}, {"high": 0.9, "normal": 0.1},
                   0.0, [], codes)
    assert (high.category, high.urgency) == ("safety_hazard", "high")


def test_a_terse_message_needs_less_of_the_model() -> None:
    """≤ SHORT_LEN letters ("门烫手") is immediate from P_SHORT on; a longer message with the
    same P and no rule is not, and below P_SHORT the short one is not either."""
    p = (emergency.P_SHORT + min(emergency.P_SURE, emergency.P_POSSIBLE)) / 2
    assert emergency.P_SHORT < p < emergency.P_SURE
    assert emergency.decide("门烫手！", p, []).level == "immediate"
    longer = "门把手摸着有点烫，是不是暖气太热了，想问问"
    assert emergency.decide(longer, p, []).level != "immediate"
    assert emergency.decide("门烫手", emergency.P_SHORT - 0.05, []).level == "none"


def test_the_second_emergency_model_is_stored_and_averaged(tmp_path) -> None:
    """The NB head survives save/load; the detector's P lies between the two heads' (their
    log-odds averaged); an artefact without it (older ones) uses the logistic head alone."""
    from itertools import accumulate

    from scipy.sparse import csr_matrix

    from common.textmodel import NB_HEAD, TextModel, _fit_cnb, _fit_nb, features, shipped_rows

    rows = shipped_rows()[::20]
    docs = [set(features(r.text)) for r in rows]
    vocab = {f: i for i, f in enumerate(sorted(set().union(*docs)))}
    cols = [sorted(vocab[f] for f in d) for d in docs]
    x = csr_matrix(([1.0 / len(c) ** 0.5 for c in cols for _ in c],
                    [i for c in cols for i in c],
                    [0, *accumulate(len(c) for c in cols)]),
                   shape=(len(docs), len(vocab)))
    y = ["yes" if r.urgency == "immediate" else "no" for r in rows]
    heads = {"emergency": _fit_nb("emergency", x, y, 8.0), NB_HEAD: _fit_cnb(x, y)}
    TextModel(vocab, heads, {}).save(tmp_path / "m.npz")
    loaded = TextModel.load(tmp_path / "m.npz")
    assert NB_HEAD in loaded.heads
    for text in ("厨房里一股臭鸡蛋味，灶台那边还有嘶嘶的声音", "路灯坏了"):
        idx = loaded.index(loaded.featurize(text))
        a, b = loaded.proba("emergency", idx)["yes"], loaded.proba(NB_HEAD, idx)["yes"]
        assert min(a, b) - 1e-6 <= loaded.p_emergency(idx) <= max(a, b) + 1e-6
        old = TextModel(loaded.vocab, {k: v for k, v in loaded.heads.items() if k != NB_HEAD},
                        loaded.meta)
        assert old.p_emergency(idx) == pytest.approx(a)
    gas = loaded.index(loaded.featurize("楼道里全是烟，着火了，快来人"))
    lamp = loaded.index(loaded.featurize("路灯坏了"))
    assert loaded.proba(NB_HEAD, gas)["yes"] > loaded.proba(NB_HEAD, lamp)["yes"]
