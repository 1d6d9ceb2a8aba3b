"""The emergency detector: recall first, separate from the topic classifier, can only raise.

Two independent signals per message:
- rules per emergency type (fire/smoke, gas, flooding, medical, violence/injury, trapped,
  missing vulnerable person, falling object, intruder, electrocution, self-harm), written
  from the label guide (docs/report-labels.md) as *situations* (smoke coming out of a door,
  a hissing pipe, water pouring into a home, an old man on the floor who cannot get up), not
  as the textbook words alone; a match in a feared/hypothetical ("万一着火"), past-and-thanked
  or plainly unrelated sense ("火锅", "燃气费", "消防演练") does not count;
- the ``emergency`` head of the text model (common/textmodel.py): P(immediate) from
  character n-grams, trained with balanced classes.

Decision (thresholds chosen by cross-validation on the training corpus, bench/text.py):
``immediate`` when the model is sure (p ≥ P_SURE) or a rule fires and the model agrees a little
(p ≥ P_RULE; p ≥ P_WEAK for the weak types); ``possible_emergency`` — a person confirms within
minutes — when either signal alone says so (a rule, or p ≥ P_POSSIBLE); otherwise nothing.
A message that itself says it is no emergency now (a scare that is over, a joke or rumour, a
denial, a lost-and-found "来拿" notice, an alarm that needs a battery, barbecue or incense
smoke: ``soft``) is demoted: only a strong rule with a sure model still makes it immediate.
Every verdict carries its evidence: the matched phrases with their type, and the n-grams that
pushed the model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from common.textmodel import canonical

# Thresholds on the model's P(immediate) (the logistic and naive-Bayes emergency heads
# averaged, TextModel.p_emergency), chosen by leave-one-writer-out cross-validation on the
# training corpus (ten writer groups, bench/text.py --writer-cv; docs/reports.md): the lowest
# P_SURE on a 0.05 grid whose pooled false alarms stay under 2.5 % of messages (goal: 3 %).
P_SURE = 0.40
P_RULE = 0.08
P_WEAK = 0.20
P_POSSIBLE = 0.35
# A "soft" message (see decide) the model is this sure of is immediate even without a strong
# rule (leave-one-writer-out: 7 more of 2298 emergencies for 0.05 points more false alarms).
P_SOFT = 0.85
# A very short message ("门烫手", "楼道好大烟", "俺娘不动了": at most SHORT_LEN letters) is
# someone typing in a hurry, and its P rests on a handful of n-grams the model may never have
# seen together: from P_SHORT on it is immediate. Leave-one-writer-out (ten groups): half of
# such messages are emergencies, and they were the worst-read length (recall 0.86; with this,
# 6 more of 3450 emergencies for 2 more false alarms of 11496 messages).
SHORT_LEN = 8
P_SHORT = 0.25
_LETTERS = re.compile(r"[\W_]+")

_TYPES: dict[str, list[str]] = {
    "fire": [
        r"着火|起火|失火|火灾|火势|大火|明火|火苗|火光|红光|火星子?|烧(起来|着了|着|了起来)|在烧|"
        r"烧焦|焦糊|糊味|烧糊|烧橡胶|烧塑料|焦(的|味)|爆炸|爆燃|噼里啪啦|"
        r"(电池|电瓶|锅|罐|瓶|充电宝|手机|管子?|变压器|电箱).{0,3}(炸了|爆了)|"
        r"(火|火苗|火头|油锅).{0,6}(蹿|窜|呼呼|往上)|着起来了?|烧着了|"
        r"烟雾(腾腾|弥漫|缭绕|越来越)|满(楼道|走廊|屋子?)(的|都是)?烟|"
        r"烧(头发|塑料|橡胶|电线|胶皮)(似的|一样|那种|的)?味|烧出(烟|火)|红红的光",
        r"冒.{0,4}(烟|火)|(黑|白|浓|青)烟|烟.{0,4}(冒|往外|钻|窜|越来越|呛)|呛得|好呛|"
        r"(到处|全|满屋|一屋子|都)是烟(?!熏)|有烟(?!味)|烟(好|很|特别|太)大",
    ],
    "alarm": [r"烟(报|感|雾报警)器?.{0,6}(响|叫)|(报警器|烟感).{0,4}(响|叫)"],
    "gas": [
        r"(燃气|煤气|天然气|然气|液化气|沼气).{0,8}(泄漏|漏|味|嘶|呲)|漏气|"
        r"(臭鸡蛋|煤气|燃气|天然气)(那种|似的|一样|的)?味|臭鸡蛋(似的|一样|那种)|疑似燃气|"
        r"(燃气|煤气|天然气)(管|管道|管子).{0,6}(破|断|挖|裂)|往外冒气|"
        r"(像|跟)(煤气|燃气|液化气|天然气)(味|一样|似的)|(气|气体)外泄|"
        r"中(了)?煤气|煤气中毒|一氧化碳|(像是|好像是|是不是)(煤气|燃气|液化气|天然气)|"
        r"(怪味|气味不对|味(道|儿)?不对|味(道|儿)?(很|特别)?冲).{0,16}(头(有点|很)?(昏|晕)|恶心|想吐|迷糊)|"
        r"(灶|管子|管道).{0,10}(有风|冒味|往外冒)",
        r"(嘶嘶|呲呲|丝丝|滋滋|哧哧).{0,10}(响|声|味)|(味|气味).{0,10}(嘶嘶|呲呲)",
    ],
    "flood": [
        r"(水管|管子|管道|水表|阀门|暖气片?|热水器|水箱|主管|排水管).{0,6}"
        r"(爆|崩|裂开|炸|破裂|脱了|掉下来)|爆管",
        r"(水|污水).{0,8}(往|向).{0,6}(屋|家|房|室|里).{0,4}(灌|流|涌|冒|漫|淌|进)|"
        r"(淹|泡)(了|到|着).{0,6}(家|屋|房|客厅|卧室|床|电器|插座)|"
        r"(客厅|卧室|屋里|家里|一楼).{0,6}(全|都)?(淹|进水|是水)|"
        r"(水位|水).{0,6}(没过|到了?|齐)(脚|膝|腿|腰|小腿|车轮)|大量进水|倒灌|被淹|"
        r"(溢水|冒水|往外冒|喷|涌|漫|灌|流).{0,8}(客厅|屋里|一屋子|一地|到处|楼梯间|电梯)|"
        r"水.{0,4}(哗哗|呼呼).{0,8}(往|灌|流|喷)|喷得?满(屋|地)|(呲|崩)开了?|"
        r"(往外|往上)冒水|泉眼|(管|暖气|接头|阀门|接口).{0,8}(呲|滋)(热)?水|(呲|滋)得满|成河了|(电梯坑|电梯井).{0,4}灌|流到楼道|(屋子|屋里|家里|地上)全是水|往上涨|淹到(车门|车顶|膝盖|腰)|"
        r"(水|污水|脏水).{0,8}(在)?往下(冲|灌)|往外冒.{0,10}(流到|漫到)(卧室|客厅|屋里|家里)|正大量喷水",
    ],
    "medical": [
        r"胸(口|闷|痛|疼)|心(口|脏).{0,8}(疼|痛|难受|不舒服)|出虚汗|吞下去|说不出话|心跳得.{0,2}厉害|"
        r"坐着都喘|(推|叫|喊)(他|她).{0,3}不动弹|(扎穿|刺穿|扎进)|有人(摔|掉|跳)下来|从楼上.{0,4}(摔|掉)下来|"
        r"躺(在)?(那里|那儿|那).{0,4}(不动|没反应)|心梗|脑梗|中风|心脏病|骤停|心肺复苏|"
        r"喘不(上|过)(气|来)|呼吸困难|上不来气|透不过气|不行了|心慌气短|闷得慌|哮喘(犯|发作)|"
        r"吞了|误吞|抽筋|嘴(唇)?(都)?(发)?紫|嘴歪|说不了话|说话.{0,3}不利索|半(拉|边)身子|"
        r"没(有)?力气|意识模糊|高烧|血止不住|止不住血|卡(在)?(嗓子|喉咙)|噎住|憋(紫|青)|"
        r"叫(她|他)?也?不(大)?(应|答应|醒)|喊(她|他)?也?不(吭声|答应|应)",
        r"(晕|昏)(倒|过去|迷|厥)|不省人事|叫不醒|没(有)?反应了|没(了)?意识|抽搐|口吐白沫|休克|"
        r"(倒|躺|趴|瘫)(在)?(地上|地下|楼道|门口).{0,10}(不动|起不来|动不了|没反应)|"
        r"(摔|跌|滑|绊|滚)(倒|了一跤|一跤|下去|下来).{0,12}(起不来|动不了|站不起|爬不起|疼得|哼哼|断了)|"
        r"(无法|不能)(站立|起身)|站都站不住|扶不起|一动就.{0,2}疼|"
        r"(头|脑袋|额头|脑门).{0,2}(磕|撞|摔)破|血糊|嘴.{0,2}歪了|说话.{0,3}说不清|"
        r"眼睛?.{0,2}睁不开|喊不醒|叫.{0,4}没醒|没(了)?呼吸|倒地|中暑|咳不出|咽不下|打摆子|"
        r"答不上来|(哼哼|呻吟).{0,6}(起不来|不动)|"
        r"起不来|站不起来|爬不起来|动不了了|脸色(发紫|发白|铁青)|嘴唇发紫|大出血|天旋地转|"
        r"(一个人|独自|独居|就我自己).{0,12}(不舒服|难受|晕|起不来|发烧|疼)|"
        r"(晕|慌|疼|难受).{0,16}(我一个人|就我自己|家里没人)|"
        r"(打|叫|拨|喊)了?120|救护车|"
        r"(坐|蹲|趴|躺|倒)在?地上.{0,10}(喘|捂|不动|起不来|哆嗦|抽)|捂着(心口|胸口)|一动不动|"
        r"倒地不起|迷迷瞪瞪|(磕|撞)(着|到|了)?.{0,2}(头|脑袋|后脑勺)|卡住?了?(喉咙|嗓子)|"
        r"脸(色)?(都)?(发青|发灰|白了|青了)|咬得.{0,4}深|"
        r"(吃|喝|吞)了?.{0,8}(药|农药|消毒液|洗衣液|洗洁精|老鼠药).{0,12}(犯困|叫不醒|迷糊|吐|抽|没反应)|"
        r"(倒|躺)在.{0,6}(叫|喊).{0,4}(没反应|不应)",
    ],
    "violence": [
        r"打(起来|人)|打架|斗殴|殴打|行凶|抢劫|砍人|追砍|捅(人|了)|持刀|"
        r"(拿|提|举|掏|抄).{0,4}(刀|棍|棒|砖|扳手|酒瓶|锤子|凳子|椅子)|动手了|砸人|往人.{0,6}砸|"
        r"推了我|抢孩子|掐起来|"
        r"打得.{0,6}(血|头破|鼻青)|"
        r"(流|出|是|全是|满脸|一地|见)血|流了.{0,4}血|头破血流|被(打|砍|捅|撞)|撞倒|被车撞|骨折|"
        r"打(他|她)?的?(媳妇|老婆|孩子|妈|老公)|打死|家暴|切.{0,6}(手|口子)|围着.{0,6}打|别打了|砸(到|着|伤)(人|孩子|老人)",
    ],
    "trapped": [
        r"(困|关|锁)(在|住|着)?电梯里|(困|关|锁)(在|住|着).{0,10}(电梯|里面|里边|屋里|房间|阳台|厕所|卫生间)|"
        r"电梯.{0,24}(困|卡住|卡在|关在|下坠|出不来|(停|卡)在?.{0,6}(中间|半道|半截|之间))|"
        r"(在|困)(电梯)?里(面|边).{0,8}(出不去|出不来|按铃|喊|拍门)|"
        r"被困|困住|困在|出不来了|打不开.{0,6}(孩子|老人|人)在里|反锁|被锁|关人|"
        r"(锁|关|困|卡)在.{0,6}(车里|楼顶|天台|阳台|门厅|储藏室|屋里|里面)|"
        r"电梯.{0,20}(门打不开|停住|灯也灭)|电梯.{0,6}(卡|停|坏)了?.{0,10}(有)?人在里|"
        r"(锁|关|困)(在)?(阳台|厕所|卫生间|屋里|房间|车里|车内)|"
        r"(阳台|屋|房间|卫生间|厕所|储藏室)(里|上)?.{0,6}出不来|"
        r"(夹住|卡住|卡在).{0,8}(抽不出|拔不出|出不来|打不开|无法)|(被)?.{0,8}(门|栏杆)(夹住|卡住)",
    ],
    "self_harm": [
        r"跳楼(?!价)|往下跳|要跳|想跳|轻生|自杀|不想活|活着没意思|寻死|割腕|站在.{0,4}(楼顶|天台|窗台)|"
        r"撑不下去|想不开|(楼顶|天台).{0,6}边(上|缘).{0,6}(坐|站|蹲|走来走去|哭|往下看)|"
        r"(楼顶|天台|窗台|顶楼|女儿墙|窗户).{0,10}(坐|站|爬|骑)|骑在.{0,4}(窗台|栏杆)|"
        r"半个身子.{0,6}(出去|探出|在外)|跳下去|"
        r"(小孩|孩子|小男孩|小女孩|娃).{0,12}(爬|站|探|蹲).{0,8}(栏杆|窗台|空调外机|外机|护栏|边缘|边上)",
    ],
    "help": [r"救命|快来人(?!修|清|通|管)|来人啊|救救|呼救"],
    "no_answer": [r"(独居|一个人住|自己住|自己在家).{0,30}(不接|没人应|无应答|不应|起不来)|"
                  r"(敲门|喊).{0,4}(没人|无人|木人)(应|开|答应)|敲门也不开|(几|三|两|好几)天(木|没)见.{0,4}出来|(电话|呼叫器).{0,8}无人接听|"
                  r"紧急呼叫器|(几|三|两|好几)天(没|木)出门"],
    "missing": [
        r"(孩子|小孩|儿子|女儿|闺女|孙子|孙女|娃|宝宝|老人|老爷子|老太太|老头|老太|大爷|大妈|奶奶|"
        r"爷爷|姥姥|姥爷|外婆|外公|母亲|父亲|俺爹|俺娘|我妈|我爸|婆婆|公公|外孙子?|外甥女?|妹妹|"
        r"弟弟|小伙子|小男孩|小女孩|孙子|老伴|老头子|老婆子|儿童|女童|男童|幼儿).{0,30}"
        r"(找不到(?!人)|找不着|走丢|走失|不见了?|丢了|没回来|木回来|没回家|没到家|联系不上|没影|木影|"
        r"跑丢|跟丢|走散|跑出去|没了|丢嘞|木找着|(没|木)见着|不记得家|至今未归)|"
        r"阿尔?兹海默|人(木|没)有?了|一转眼.{0,3}(木|没|不见)|(一会儿?|转眼)的?(功夫|工夫).{0,4}不见|"
        r"(男童|女童|小孩|小男孩|小女孩|孩子|男孩|女孩).{0,12}(独自|一个人|光着脚).{0,10}(哭|走|在那)|"
        r"周围(无|没有?)(家长|大人)|问(她|他)?(住哪|叫啥|家在哪).{0,10}(不知道|说不清)|是不是走丢|"
        r"寻人|(痴呆|糊涂|多动症|脑子不(太)?清楚|认知障碍).{0,30}(出去|出门|下去|跑|不在家|未归|没回)|"
        r"老年痴呆|阿尔茨海默|糊涂.{0,20}(出去|出门|没回|不见|走)|"
        r"(到现在|天黑了?|一夜|一晚上).{0,6}(还|都|也)?没(回来|回家|找到)",
    ],
    "falling": [
        r"(摇摇欲坠|晃晃悠悠|悬着|悬在半空|吊着|快掉|要掉|往下掉|掉了一半|随时.{0,4}(掉|砸|塌))|"
        r"(空调外机|广告牌|招牌|花盆|玻璃|窗户|外墙|瓷砖|树枝|大树|脚手架|冰溜子|冰凌).{0,10}"
        r"(松|晃|掉|砸|塌|歪|倒|裂|悬)|高空抛物|往下(扔|砸|丢)(?!烟头|＿)|往楼下扔|"
        r"(挂|吊)在.{0,6}(窗框|半空|边上)|晃荡|掀起来|一边掉下|"
        r"(扔|砸|落).{0,6}(菜刀|酒瓶|砖|花盆).{0,6}(脚边|下来|地上)|"
        r"眼看就?要.{0,3}(掉|刮|砸|塌)|就剩.{0,6}挂着|翘起来.{0,6}晃|"
        r"(楼上|上面|窗户|阳台)有人(在)?(往下)?(扔|倒|砸)(?!了?(烟头|垃圾|烟))|往下倒(碎)?(玻璃|瓶|砖)|"
        r"(晃|挪|摆动|悬空|挂着|翘着|倾斜|外倾).{0,20}(底下|下面|下方|正下面)(就是|是|为|全是|好多|有)",
    ],
    "intruder": [
        r"(撬|拧|扭|拽|推|试|拉|扒).{0,4}(门|锁|把手|窗)|挨(家|户|门).{0,4}(试|拧|推|撬)|"
        r"一家一家.{0,6}(试|拧|推)|(陌生|可疑).{0,4}(人|男|女).{0,16}(门|楼道|单元|翻|跟|进)|"
        r"翻(墙|窗|阳台)|(小偷|贼).{0,6}(在|正|进)|(?<!进)入室(?!内)|有人(在)?(撬|偷)|跟踪|"
        r"(捅|开|试|按).{0,4}(锁眼|密码)|(踹|砸).{0,4}门|掰开|往里钻|鬼鬼祟祟|跟着我进|"
        r"防盗(网|窗).{0,6}(拽|掰|撬|拉)|(爬|钻)(到|进).{0,8}(阳台|窗)|"
        r"(弄|鼓捣|捅)(我|俺)?家?的?(锁|门)|翻越|尾随|(管子|水管|阳台外面?|窗外).{0,4}(有人)?(在)?(往上)?爬|"
        r"拽着.{0,6}(孩子|小女孩|小男孩)",
    ],
    "electric": [
        r"触电|电到人|被电(了|到|击|得)|电击|(摸|碰)(一下)?.{0,4}(手就麻|发麻|电人)|"
        r"(电线|电缆|插座|电箱|配电|电闸|灯).{0,8}(泡在|泡着|泡水|浸|淹|进水|滴水|在滴|打火|冒火|火花|火星)|"
        r"(水|积水).{0,6}(里|中|上).{0,6}(电线|电缆|插座)|"
        r"(电线|电缆).{0,6}(掉|垂|耷拉).{0,10}(水|地上|路)|"
        r"漏电.{0,12}(水|人|孩子)|(带电|漏电).{0,12}(手.{0,2}麻|小孩|孩子)|手一麻|电死|"
        r"(线|电线).{0,6}(泡在|泡着)|灯(里|里面)?(都)?(是水|在滴水|进水)|配电.{0,12}(水|漫|淹)|(水|漫|淹).{0,10}配电|(配电|电箱|电闸|插座|电线).{0,10}滋啦|"
        r"(淹|泡).{0,16}(在充电|通电|充电桩)|(水|积水).{0,16}(漏电|(充电桩|电箱|电表箱).{0,8}(电|通电))",
    ],
}
# Rules of these types decide with the model's weak agreement; the others (a falling object,
# an intruder, live wires, a missing person) read like everyday hazards too, so they need
# more of the model before "immediate" and otherwise ask a person.
WEAK = frozenset({"falling", "intruder", "no_answer", "alarm", "help"})
# Gaps match as little as they can: the evidence is the shortest phrase, and the clause check
# below looks at the hit's own clause, not at a later one the gap ran into.
_COMPILED = {t: [re.compile(re.sub(r"(\.\{0,\d+\})", r"\1?", p)) for p in ps]
             for t, ps in _TYPES.items()}

# Words that contain an alarming character but name something harmless.
_HARMLESS = re.compile(
    r"火锅|火车|火腿|火柴|火龙果|上火|火爆|火气|发火|恼火|火箭|烟花爆竹|烟酒|香烟|烟头|"
    r"(抽|吸)烟[^。！!？?\n]*|油烟|烟囱|燃气费|煤气费|燃气卡|燃气公司电话|燃气表(怎么|如何|在哪)|"
    r"天然气费|消防演练|演练|演习|热到爆炸|(气|笑|吓|热|烦|累|吵|熏|臭)死(人|我)?了?|要跳格子|"
    r"(防|登记|备案|定位).{0,4}走失|走失.{0,4}(登记|备案|手环)|把手|救护车(上次|进不来|进小区|是去)|"
    r"(跟|像|和|好像)(打仗|打架|着火|火烧)(似的|一样)|救命😵|火灾(隐患|预防|知识)|防火(知识|宣传)|急救(培训|知识|包|箱)|"
    r"血压|献血|验血|抽血|打起来(很|挺|不)|架子鼓|(点|打)不着火|跳楼价|群里炸|炸了锅|"
    r"(无|没有?)人?受伤|(月|门|饭|银行|会员|公交|停车)卡|不是着火|触电(隐患|风险|危险)|"
    r"救救孩子吧|[冻累饿困忙热吵臭脏烦]得不行|(学|培训|教|课).{0,8}(心肺复苏|急救)|心肺复苏(培训|课)|"
    r"(电梯)?困人.{0,4}(演练|演习)|(怎么|如何)自救|去火星|(?<![喊叫声嚷])[\"“「'‘][^\"”」'’]{1,4}[\"”」'’]|(辣|热|气|馋|急|忙)(得|到)我?.{0,4}(冒烟|爆炸|炸了)|原地爆炸|"
    r"(狗|猫|鸟|宠物|钥匙|快递|东西|手机|钱包).{0,6}(走丢|丢了|不见了|找不到)"
)
# "万一着火", "担心漏气", "怕哪天炸了": a feared emergency is a hazard, not one happening now.
_FEARED = re.compile(
    r"(万一|如果|要是|假如|以防|防止|担心|生怕|怕哪天|哪天|一旦|避免|预防|容易|会不会|可能会|"
    r"真要|不然|要不|(就|我|俺|老|总|是)怕)")
_FEARED_AFTER = re.compile(r"^.{0,6}(往哪跑|咋跑|就完了|就麻烦|都不会响|可咋整|谁负责)")
# A past event (thanks for a rescue, yesterday's fire now out) with nothing going on now.
_PAST = re.compile(r"感谢|谢谢|表扬|点赞|好人|锦旗|多亏|昨天|昨晚|前天|夜来|上次|上回|上周|上礼拜|"
                   r"上个?周末|上个月|之前|那天|去年|前年|已经?(处理|扑灭|灭了|散了|好了|出院|找到|找着)|"
                   r"新闻|网上|隔壁(小区|街道)|别的小区|不是咱们?小区|请问|问一下|问问|咨询|建议|想问|"
                   r"听说|前(几|两|些)天|上个?(礼拜|星期)|那回|那次|"
                   r"天天|每天|最近|近期|多次|好几(天|回|次)|老是|经常|隔三差五")
_NOW = re.compile(r"现在|正在|还在|马上|赶紧|快来|快点|立刻|立即|救命|又|这会儿?")
# The scare is over ("虚惊一场", "是演练", "已经救出来了"): nothing in the message counts.
_RESOLVED = re.compile(r"没事了|木事了|虚惊|误报|是演练|演习|"
                       r"已经(处理好|救出|救下|找到|找着|灭了|扑灭)|"
                       r"救出来了|找回来了|找到了|后来(救|找|灭|好)|(家人|家里人|闺女|儿子).{0,6}(接走|领走|找过来)")
# The message itself says this is no emergency now: a scare that is over, a joke, a rumour
# or a question about one, a denial anywhere ("没冒烟", "不是燃气"), a lost-and-found or
# give-away notice ("来拿"), an alarm that only needs a battery, smoke from an everyday source
# (barbecue, incense, a neighbour's stove). These read like emergencies to the n-grams and
# to single rules; the detector then only asks a person (possible_emergency) unless a rule
# fires and the model is sure.
_SOFT = re.compile(
    r"虚惊|没事了?|木事|多亏|缓过来|误报|按错|报警器坏了|已经(散了|来电|修好)|"
    r"哈哈|笑死|开(个)?玩笑|😂|🤣|馋|减肥|谣言|造谣|瞎传|别吓|是真的吗|真的假的|"
    r"后来(咋样|怎么样|咋弄)|视频|电视剧?|电影|游戏|直播|抖音|拍戏|文章|辟谣|假消息|听人家说|表扬|锦旗|出院|"
    r"(?<!是)不是(着火|燃气|煤气|火|漏气)|没(有)?(着火|冒烟|漏气|动手|烟|火)|未见烟|闻不到|"
    r"(?<![快赶])来(拿|领|抱走|端|摘)(?!灭火|水|绳|梯)|认领|失主|失物|拾到|捡到|自取|免费送|白给|"
    r"送完为止|(烟感|报警器).{0,12}(没电|电池)|是不是没电|应该是没电|换电池|无故|"
    r"烧烤|烤串|炭火|熏(肉|腊|鸭|鱼|鸡)|烟熏|烧纸|纸钱|焚香|烧香|生炉子|电焊|秸秆|烧树叶|排烟")
# A denial right before the hit: "不是漏气", "没有味儿", "木有烟", "别翻墙", and a near miss
# that is over: "幸亏木砸着人", "差点砸到人".
_DENIED = re.compile(r"(不是|没有|没|木有|并无|无|未见|没闻到|闻不到|不|别再?|"
                     r"(幸好|幸亏|好在|差点|险些)(没|木)?)$")
# Clause breaks, and the turns residents take between topics in one message ("对了", "先不说
# 这个"): a past or enquiry word counts against a hit only inside the hit's own clause.
_CLAUSE = re.compile(r"[。！!？?；;，,\n]|\s+|对了|还有|另外|先不说|算了|哎呀|不对|顺便")


def _clause(text: str, start: int, end: int) -> str:
    """The hit's own clause, at most _REACH characters either side (voice-to-text run-ons
    have no punctuation: "想问物业电话…楼下有个人被车撞了" is two clauses)."""
    a = max((m.end() for m in _CLAUSE.finditer(text, 0, start)), default=0)
    m = _CLAUSE.search(text, end)
    return text[max(a, start - _REACH) : min(m.start() if m else len(text), end + _REACH)]


_REACH = 12


@dataclass
class Verdict:
    level: str  # immediate | possible_emergency | none
    probability: float  # the model's P(immediate)
    types: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # matched phrases, then model n-grams


def _norm(text: str) -> str:
    return canonical(unicodedata.normalize("NFKC", text).lower())


# ... unless it turns to something happening now ("本来是来表扬的，但是现在…", "先不说了").
_TURN = re.compile(r"(但是|可是|不过)现在|先不说|不说了")


# A new topic ("先表扬一下保洁…另外，车库冒白烟"): praise or a joke before it says nothing
# about what follows.
_TOPIC = re.compile(r"另外|还有(一件|个|就是|件)|对了|顺便|再说(个|一)|说到这|不过更|更要紧|等一下")


# Long messages: the model also reads each sentence (or topic) alone, so an emergency buried
# after a fee question is not diluted by it; a window's P counts WINDOW_WEIGHT of the whole's
# (leave-one-writer-out: +0.2 points of recall for +0.1 point of false alarms).
WINDOW_FROM = 40  # characters
WINDOW_MIN = 12  # a window is at least this long (short pieces join the next)
WINDOW_WEIGHT = 0.9
_SENTENCE = re.compile(r"[。！!？?；;\n]|" + _TOPIC.pattern)


def windows(text: str) -> list[str]:
    """The sentences/topics of a long message (none for a short one)."""
    if len(text) < WINDOW_FROM:
        return []
    cuts = [0] + [x for m in _SENTENCE.finditer(text) for x in (m.start(), m.end())] + [len(text)]
    parts = [text[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True) if text[a:b].strip()]
    out = []
    for i in range(len(parts)):
        w, j = parts[i], i
        while len(w) < WINDOW_MIN and j + 1 < len(parts):
            j += 1
            w += "，" + parts[j]
        out.append(w)
    return out if len(out) > 1 else []


def soft(text: str) -> bool:
    """The message says it is no emergency now (see _SOFT, _RESOLVED); only what follows the
    last change of topic counts."""
    t = _norm(text)
    turns = [m.end() for m in _TOPIC.finditer(t)]
    if turns:
        t = t[turns[-1]:]
    return bool(_SOFT.search(t) or _RESOLVED.search(t)) and not _TURN.search(t)


def rule_hits(text: str) -> list[tuple[str, str]]:
    """(type, matched phrase) for each emergency pattern found in a current, literal sense."""
    text = _norm(text)
    if _RESOLVED.search(text):
        return []
    masked = _HARMLESS.sub(lambda m: "＿" * len(m.group(0)), text)
    hits = []
    for kind, patterns in _COMPILED.items():
        for r in patterns:
            for m in r.finditer(masked):
                before = masked[max(0, m.start() - 6) : m.start()]
                if _FEARED.search(before) or _DENIED.search(before) or \
                        _FEARED_AFTER.search(masked[m.end() :]):
                    continue
                clause = _clause(masked, m.start(), m.end())
                if _PAST.search(clause) and not _NOW.search(clause):
                    continue
                hits.append((kind, m.group(0)))
                break
    return hits


def decide(text: str, p: float, model_words: list[str]) -> Verdict:
    hits = rule_hits(text)
    types = sorted({k for k, _ in hits})
    evidence = [f"{k}:{w}" for k, w in hits] + [f"model:{w}" for w in model_words]
    strong = any(k not in WEAK for k in types)
    if soft(text):
        # Demoted, not dropped: a rule and a sure model still make it immediate.
        level = "immediate" if (strong and p >= P_SURE) or p >= P_SOFT else \
            "possible_emergency" if hits or p >= P_POSSIBLE else "none"
        if level == "none":
            return Verdict("none", p)
    elif p >= P_SURE or (strong and p >= P_RULE) or (types and p >= P_WEAK) or \
            (p >= P_SHORT and len(_LETTERS.sub("", text)) <= SHORT_LEN):
        level = "immediate"
    elif hits or p >= P_POSSIBLE:
        level = "possible_emergency"
    else:
        return Verdict("none", p)
    return Verdict(level, p, types, evidence)
