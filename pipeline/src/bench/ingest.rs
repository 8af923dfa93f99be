//! `xinfang bench ingest`: letters per second and peak memory of the whole intake, on SQLite
//! and on PostgreSQL. Generates text letters (检举控告 about fictitious officials, about a fifth
//! of them repeats of earlier ones, a few out of scope and a few 批评建议), writes them as .txt
//! files into a temporary folder and ingests them through `Intake::run` (originals stored, job
//! queued and claimed, rules, repeat lookup, registration) into a fresh store per backend. A
//! measurement, not a test: the issue sets no numeric target, so the figures are printed side
//! by side. Nothing is written to the user's store or data directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use xinfang::config::catalogue::CatalogueError;
use xinfang::config::Config;
use xinfang::intake::{Intake, LetterInput, LetterReport, SystemError};
use xinfang::stages::ocr::{OcrError, OcrPool};
use xinfang::store::{display_url, Store, StoreError};
use xinfang::understand::{UnderstandError, Understander};
use xinfang_models::{IngestStatus, LetterClass};

/// Why the benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchIngestError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] xinfang::config::ConfigError),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Understand(#[from] UnderstandError),
    #[error("cannot start the OCR engine: {0}")]
    Ocr(#[from] OcrError),
    #[error(transparent)]
    Intake(#[from] SystemError),
    #[error("PostgreSQL at {url}: {action}: {source}")]
    Postgres { url: String, action: String, source: sqlx::Error },
    #[error("{url} is not a postgres:// URL with a server to create databases on")]
    PostgresUrl { url: String },
    #[error("interrupted ({0}); the temporary letters, store and database are removed")]
    Interrupted(&'static str),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BenchIngestError + 'a {
    move |source| BenchIngestError::Io { what, path: path.to_path_buf(), source }
}

// ---------------------------------------------------------------------------------------------
// The letters

use super::rules::Rng;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋",
    "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪",
    "范", "廖", "贾", "夏", "韦", "方", "邹", "熊", "秦", "邱", "尹", "薛", "段", "雷", "侯", "龙", "黎", "贺", "顾",
    "龚", "邵", "严", "覃", "戴", "莫", "向", "汤",
];
const GIVEN: &[&str] = &[
    "建", "国", "德", "明", "春", "华", "志", "勇", "红", "平", "军", "伟", "芳", "秀", "英", "海", "强", "林", "文",
    "永", "发", "长", "根", "生", "福", "贵", "玉", "兰", "金", "宝", "富", "荣", "桂", "香", "云", "峰", "涛", "斌",
    "超", "辉", "刚", "健", "亮", "波", "敏", "静", "丽", "霞", "燕", "萍", "凤", "琴", "新", "光", "胜", "贤", "忠",
    "良", "才", "祥", "顺", "清", "成", "松", "青", "泉", "庆", "安", "喜", "旺", "兴", "振", "卫", "东", "江",
];
const TOWNS: &[&str] = &[
    "石桥", "云溪", "白沙", "柳塘", "河湾", "青山", "龙潭", "桂花", "东坪", "马鞍", "新塘", "竹坑", "杏林", "双塘",
    "樟树", "石门", "沙洲", "横塘", "金坑", "枫林", "大坪", "黄岭", "梅溪", "松柏", "高桥", "观音", "花桥", "长乐",
    "荷叶", "麻田", "太平", "三江",
];
const VILLAGE_HEAD: &[&str] = &[
    "柳", "杨", "桃", "李", "梨", "枣", "荷", "莲", "竹", "松", "柏", "枫", "桂", "兰", "梅", "石", "沙", "泉", "溪",
    "白", "黄", "青", "红", "金", "银", "东", "西", "南", "北", "上", "下", "大", "小", "新", "老", "牛", "马", "龙",
];
const VILLAGE_TAIL: &[&str] = &[
    "河", "塘", "坪", "岭", "冲", "湾", "田", "山", "坳", "岗", "铺", "桥", "庄", "园", "林", "溪", "源", "头", "口",
    "湖", "洲", "坡", "坑", "垅", "江", "峰", "井", "堰", "岩", "屋",
];
const BUREAUS: &[&str] = &[
    "民政局",
    "住房和城乡建设局",
    "交通运输局",
    "农业农村局",
    "自然资源局",
    "教育局",
    "卫生健康局",
    "水利局",
    "人力资源和社会保障局",
    "财政局",
    "林业局",
    "乡村振兴局",
];
const SECTIONS: &[&str] = &["计财股长", "项目股长", "建设股长", "审批股长", "规划股长"];
const EATERIES: &[&str] = &[
    "山水农家乐",
    "聚福楼",
    "金龙大酒店",
    "湘味轩",
    "福满楼",
    "好再来饭店",
    "渔家乐",
    "农家小院",
    "望江楼",
    "荷塘月色山庄",
];
const ANONYMOUS: &[&str] = &["知情人", "一村民", "一名老党员", "部分村民", "一群众", "老百姓"];

/// Where a reported official works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Village,
    Town,
    Bureau,
    School,
    Clinic,
    Station,
}

/// One kind of misconduct: a first account and a restatement with the same facts, with
/// `{n}` the name, `{a}` the amount, `{c}` a count, `{v}` a villager, `{when}` a month,
/// `{thing}` what was being applied for, `{place}` the town, `{eat}` an eatery.
struct Act {
    label: &'static str,
    cats: &'static [Cat],
    amount: (u32, u32),
    count: (u32, u32),
    first: &'static str,
    again: &'static str,
}

const ACTS: &[Act] = &[
    Act {
        label: "侵占低保金",
        cats: &[Cat::Village, Cat::Town],
        amount: (3_000, 60_000),
        count: (2, 9),
        first: "{n}利用负责低保审核的便利，把{c}户低保户的低保金扣在自己手里，{when}以来一共侵占了{a}元。{v}家的低保卡一直被{n}拿着，钱从来没有到过我们手上。",
        again: "{v}等{c}户低保户的低保卡被{n}扣着，从{when}到现在，低保金一共{a}元都被他侵占了，一分钱也没有发到户。",
    },
    Act {
        label: "搞人情保",
        cats: &[Cat::Village],
        amount: (300, 1_500),
        count: (2, 6),
        first: "{n}长期搞人情保，把低保名额给了自己的亲戚，他弟弟家开着小轿车，一家{c}口也吃上了低保，每月领{a}元。真正困难的{v}家申请了三次都没批下来。评低保不开会、不公示，都是{n}一个人说了算。",
        again: "{n}的弟弟家有小轿车，一家{c}口照样吃低保，每月领{a}元，这就是人情保。{v}家困难却评不上，评低保从来不开会、不公示。",
    },
    Act {
        label: "违规发放危房改造补助",
        cats: &[Cat::Village, Cat::Town, Cat::Bureau],
        amount: (8_000, 40_000),
        count: (2, 8),
        first: "{when}，{n}违规发放危房改造补助，把{c}个危改指标给了关系户，每户补助{a}元，其中两户住的是新建的楼房。{v}家的土坯房漏雨多年，却一直评不上。",
        again: "危房改造补助被{n}违规发放给关系户，{when}一共{c}个指标，每户补助{a}元，有的人家住着新楼房，{v}家的土坯房却没有评上。",
    },
    Act {
        label: "挪用扶贫资金",
        cats: &[Cat::Village, Cat::Town],
        amount: (20_000, 300_000),
        count: (3, 20),
        first: "{when}上面拨下来产业扶贫资金{a}元，{n}私自把其中一大半挪用了，拿去给自己家修房子和买车，{c}户脱贫户的到户项目一个都没有落实。",
        again: "{when}的产业扶贫资金{a}元，被{n}私自挪用去修自家房子、买车，{c}户脱贫户的到户项目到现在也没有落实。",
    },
    Act {
        label: "收受红包",
        cats: &[Cat::Village, Cat::Town, Cat::Bureau, Cat::School, Cat::Clinic, Cat::Station],
        amount: (500, 20_000),
        count: (2, 10),
        first: "{when}，{v}为了办理{thing}去找{n}，{n}拖了{c}个星期不给办，{v}只好送了{a}元红包，第二天就办好了。找他办事的人都要送钱，不送就一直拖着。",
        again: "{v}办{thing}，被{n}拖了{c}个星期，{when}送了{a}元红包才给办。收受红包的事大家都知道。",
    },
    Act {
        label: "公款吃喝",
        cats: &[Cat::Village, Cat::Town, Cat::Bureau, Cat::School, Cat::Clinic, Cat::Station],
        amount: (2_000, 30_000),
        count: (2, 5),
        first: "{n}经常带人到{eat}公款吃喝，一个星期去{c}次，喝的是茅台，{when}有一次就花了{a}元，签单以后以接待费的名义在单位报销。",
        again: "{n}经常在{eat}公款吃喝，每个星期{c}次，{when}一顿饭就花了{a}元，都是签单后用接待费报销的。",
    },
    Act {
        label: "截留征地补偿款",
        cats: &[Cat::Village, Cat::Town],
        amount: (30_000, 500_000),
        count: (3, 30),
        first: "{when}修公路征地，{c}户村民的征地补偿款共{a}元打到了村集体账上，{n}截留至今没有发给群众，问他就说要抵扣别的费用。",
        again: "{c}户村民的征地补偿款共{a}元，{when}就到了村集体账上，被{n}截留，到现在没有发到群众手里。",
    },
    Act {
        label: "私吞土地流转费",
        cats: &[Cat::Village],
        amount: (10_000, 120_000),
        count: (50, 600),
        first: "村集体{c}亩土地{when}流转给外地人种果树，每年流转费{a}元，{n}私自收了钱，一直不入村账，账目也从来不公开。",
        again: "村集体{c}亩地的流转费每年{a}元，从{when}开始就被{n}私自收走，不入村账，村务从来不公开。",
    },
    Act {
        label: "虚报冒领惠农补贴",
        cats: &[Cat::Village, Cat::Station],
        amount: (5_000, 80_000),
        count: (30, 400),
        first: "{n}弄虚作假，虚报种粮面积{c}亩，{when}冒领粮食直补和耕地地力保护补贴{a}元，报上去的名单里还有已经过世的人。",
        again: "{when}，{n}弄虚作假，虚报了{c}亩种粮面积，冒领惠农补贴{a}元，名单里有过世多年的人。",
    },
    Act {
        label: "收受工程好处费",
        cats: &[Cat::Town, Cat::Bureau],
        amount: (20_000, 400_000),
        count: (2, 12),
        first: "{when}{place}的道路硬化工程发包，{n}暗箱操作，把工程给了他的小舅子，事后收取好处费{a}元。工程偷工减料，{c}个月路面就开裂了。",
        again: "{when}{place}道路硬化工程发包时，{n}暗箱操作，工程给了小舅子，收了好处费{a}元，路面{c}个月就裂了。",
    },
    Act {
        label: "克扣学生营养餐",
        cats: &[Cat::School],
        amount: (20_000, 200_000),
        count: (200, 1_500),
        first: "{n}长期克扣学生营养餐，每天每个学生的标准是五元，实际吃的不到三元，全校{c}个学生，{when}以来的差价有{a}元，都进了他的腰包。",
        again: "全校{c}个学生的营养餐被{n}克扣，五元的标准只吃到三元，从{when}起差价{a}元都装进了他的腰包。",
    },
    Act {
        label: "套取医保基金",
        cats: &[Cat::Clinic],
        amount: (30_000, 600_000),
        count: (20, 300),
        first: "{n}指使医生搞挂床住院，{when}以来虚假住院{c}人次，套取医保基金{a}元，病人根本没有住进来。",
        again: "{n}一直在搞挂床住院，虚假住院{c}人次，{when}以来套取医保基金{a}元。",
    },
    Act {
        label: "公车私用",
        cats: &[Cat::Town, Cat::Bureau, Cat::Station],
        amount: (800, 9_000),
        count: (2, 8),
        first: "{n}长期公车私用，单位的车天天停在他家楼下，周末开去外地钓鱼，{when}一个月就报销油费{a}元，一年去了{c}趟省城。",
        again: "单位的车被{n}公车私用，周末开去钓鱼，{when}一个月就报销油费{a}元，一年跑了{c}趟省城。",
    },
    Act {
        label: "大操大办婚宴",
        cats: &[Cat::Village, Cat::Town, Cat::School],
        amount: (30_000, 300_000),
        count: (30, 90),
        first: "{when}，{n}给儿子办婚礼大操大办，摆了{c}桌流水席，收受礼金{a}多元，下属和找他办事的人都去送了礼。",
        again: "{when}，{n}给儿子办婚礼，大摆{c}桌流水席，收受礼金{a}多元。",
    },
];

/// Sentences a writer adds around the facts (`{n}` the name, `{place}` the town): they make
/// letters about the same kind of misconduct differ as much as real ones do.
const ASIDES: &[&str] = &[
    "这件事在{place}很多人都知道，只是没有人敢出面。",
    "{n}平时说话很横，谁提意见就给谁穿小鞋。",
    "我们找{n}讲过道理，他说上面有人，告也没用。",
    "群众私下议论很多，影响很坏。",
    "这几年{n}家里盖了三层楼，还在县城买了房子。",
    "他常说自己在上面有人，大家都不敢得罪他。",
    "上面来检查的时候，他提前打招呼，让大家统一口径。",
    "有人去问过，他说是集体研究决定的，可谁也没见过会议记录。",
    "年初开群众会，好几个人当面问过，{n}都支支吾吾答不上来。",
    "大家担心被打击报复，所以很多人不敢署名。",
    "这种事不是一次两次了，前几年就有人议论过。",
    "{place}的老百姓对这件事意见很大，都说干部带了坏头。",
    "他老婆在街上开了一家超市，生意都是靠他的关系拉来的。",
    "知道情况的人还有好几个，组织上一问就清楚。",
    "我们老百姓不懂政策，只知道这样做不公平。",
    "以前的干部不是这样的，到了{n}手里就变了样。",
    "逢年过节，找他办事的人提着东西排队上门。",
    "他开会的时候讲廉洁讲得最响，背地里却是另一套。",
    "我们也跟镇里反映过，镇里说会过问，后来就没有下文了。",
    "他经手的账从来不让别人看，问多了就发脾气。",
    "这些钱都是国家给老百姓的，不能让他一个人拿走。",
    "村里的老人说起这件事就叹气。",
    "希望派下来的人直接找群众了解情况，不要先找他。",
    "如果需要，我们可以带调查的同志去现场看。",
];

/// What writers of out-of-scope letters say about themselves (`{age}`, `{place}` the town).
const PERSONAL: &[&str] = &[
    "我今年{age}岁了，身体也不好。",
    "家里就靠我一个人种几亩田。",
    "孩子都在外地打工，家里只有我和老伴。",
    "这件事拖了很久，我实在没有办法了。",
    "我去{place}政府问过，他们叫我找别的部门。",
    "我不识几个字，这封信是请人代写的。",
    "我在{place}住了一辈子，从来没有跟人红过脸。",
    "为这件事我晚上都睡不着觉。",
    "听别人说纪委管得了，我就写了这封信。",
    "我的电话一直开着，随时可以联系我。",
    "我老伴今年{age}岁，常年吃药。",
    "我也是没有别的路可走了。",
    "我儿子在广东打工，一年只回来一次。",
    "这封信我改了好几遍，写得不好请见谅。",
    "我前后跑了{place}好几趟，车费都花了不少。",
    "我们一家都是老实本分的人。",
    "我身体有病，不能长时间站着排队，只好写信。",
    "左邻右舍都可以给我作证。",
    "这事说起来话长，我尽量写清楚。",
    "我腿脚不方便，孙子帮我把信寄出来的。",
    "我也不知道该找哪个部门，只好先写给你们。",
    "我今年{age}岁，没有什么文化，希望领导体谅。",
];

const SALUTATIONS: &[&str] = &[
    "尊敬的县纪委领导：",
    "县纪委领导：",
    "青岚县纪委监委：",
    "县纪委监委的领导同志：",
    "尊敬的纪委领导：",
    "县纪委信访室：",
];

const CLOSINGS: &[&str] = &[
    "请县纪委派人调查核实，还老百姓一个公道。",
    "以上情况属实，希望组织上认真查处。",
    "我们不敢当面说，只能写信反映，请纪委为老百姓做主。",
    "群众敢怒不敢言，请上级派人下来查清楚。",
    "请组织上认真调查，依纪依法处理。",
    "望领导重视，派人下来了解。",
    "以上反映的情况都可以调查，请组织核实。",
    "请纪委主持公道，让老实人不吃亏。",
];

/// What a generated letter is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A first 检举控告.
    First,
    /// The same person and matter as an earlier letter (同人同事).
    Repeat,
    /// Another organ's matter.
    OutOfScope,
    /// 批评建议.
    Suggestion,
}

pub(crate) struct Letter {
    pub text: String,
    pub kind: Kind,
}

/// A reported official and what they are accused of: kept for the repeats.
struct Matter {
    name: String,
    unit: String,
    post: &'static str,
    /// Another way of writing the post (支书 for 党支部书记), for restatements.
    alias: &'static str,
    town: String,
    cat: Cat,
    act: usize,
    amount: u32,
    count: u32,
    victim: String,
    eatery: usize,
    /// The aside of the first letter, if any (restatements often repeat it).
    aside: Option<usize>,
    when: (u32, u32),
    written: (u32, u32, u32),
    reporter: Option<String>,
}

/// Generates letters one at a time, deterministically, each text distinct.
pub(crate) struct Generator {
    rng: Rng,
    matters: Vec<Matter>,
    /// Hashes of the texts written so far.
    seen: HashSet<u64>,
    /// The officials reported so far.
    reported: HashSet<u64>,
}

/// `{key}` placeholders replaced.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn person_name(rng: &mut Rng) -> String {
    let surname = *rng.pick(SURNAMES);
    let given = *rng.pick(GIVEN);
    let second = if rng.chance(75) { *rng.pick(GIVEN) } else { "" };
    format!("{surname}{given}{second}")
}

const SIGN_PAD: &str = "                                        ";

fn phone(rng: &mut Rng) -> String {
    let p = *rng.pick(&["139", "138", "137", "158", "186", "135", "150", "187"]);
    format!("{p}{:04}{:04}", rng.below(10_000), rng.below(10_000))
}

/// The account of a matter: the first one, or a restatement with the same facts.
fn detail(m: &Matter, again: bool) -> String {
    let a = &ACTS[m.act];
    let thing = match m.cat {
        Cat::Village => "宅基地审批手续",
        Cat::Town => "建房审批",
        Cat::Bureau => "项目审批",
        Cat::School => "孩子转学手续",
        Cat::Clinic => "住院报销",
        Cat::Station => "补贴申报",
    };
    let eat = format!("{}{}", m.town, EATERIES[m.eatery]);
    let amount = m.amount.to_string();
    let count = m.count.to_string();
    let when = format!("{}年{}月", m.when.0, m.when.1);
    let vars = [
        ("n", m.name.as_str()),
        ("a", amount.as_str()),
        ("c", count.as_str()),
        ("v", m.victim.as_str()),
        ("when", when.as_str()),
        ("thing", thing),
        ("place", m.town.as_str()),
        ("eat", eat.as_str()),
    ];
    fill(if again { a.again } else { a.first }, &vars)
}

fn aside(i: usize, m: &Matter) -> String {
    fill(ASIDES[i], &[("n", m.name.as_str()), ("place", m.town.as_str())])
}

/// The signature block: a named reporter with a telephone, or an anonymous one.
fn signature(rng: &mut Rng, reporter: Option<&str>, place: &str, date: (u32, u32, u32)) -> String {
    let date = format!("{}年{}月{}日", date.0, date.1, date.2);
    match reporter {
        Some(r) => {
            let label = *rng.pick(&["反映人", "举报人", "署名"]);
            let phone = phone(rng);
            format!("{SIGN_PAD}{label}：{r}\n{SIGN_PAD}电话：{phone}\n{SIGN_PAD}{date}\n")
        }
        None => {
            let anon = *rng.pick(ANONYMOUS);
            let who = if rng.chance(30) { format!("{place}{anon}") } else { anon.to_string() };
            format!("{SIGN_PAD}{who}\n{SIGN_PAD}{date}\n")
        }
    }
}

impl Generator {
    pub(crate) fn new() -> Generator {
        Generator {
            rng: Rng(0x5eed_1e77_e25b_e4c3),
            matters: Vec::new(),
            seen: HashSet::new(),
            reported: HashSet::new(),
        }
    }

    /// The next letter: about a fifth repeats of earlier matters, 3 % out of scope, 2 %
    /// 批评建议, the rest first accusations. Never the same text twice.
    pub(crate) fn next_letter(&mut self) -> Letter {
        loop {
            let roll = self.rng.below(100);
            let (letter, matter) = if roll < 20 && !self.matters.is_empty() {
                (self.repeat(), None)
            } else if roll < 23 {
                (self.out_of_scope(), None)
            } else if roll < 25 {
                (self.suggestion(), None)
            } else {
                let (m, key) = self.matter();
                (self.first(&m), Some((m, key)))
            };
            if self.seen.insert(xinfang::stages::repeat::stable_hash(&letter.text)) {
                if let Some((m, key)) = matter {
                    self.reported.insert(key);
                    self.matters.push(m);
                }
                return letter;
            }
        }
    }

    fn name(&mut self) -> String {
        person_name(&mut self.rng)
    }

    fn town(&mut self) -> String {
        let i = self.rng.below(TOWNS.len() as u64) as usize;
        format!("{}{}", TOWNS[i], if i % 3 == 2 { "乡" } else { "镇" })
    }

    fn village(&mut self) -> String {
        loop {
            let (h, t) = (*self.rng.pick(VILLAGE_HEAD), *self.rng.pick(VILLAGE_TAIL));
            if h != t {
                return format!("{h}{t}村");
            }
        }
    }

    fn date(&mut self) -> (u32, u32, u32) {
        (2024 + self.rng.range(0, 1), self.rng.range(1, 12), self.rng.range(1, 28))
    }

    fn round(n: u32) -> u32 {
        if n >= 10_000 {
            n / 100 * 100
        } else {
            n / 10 * 10
        }
    }

    /// A post somewhere in the county: its unit, the post as written, another way of writing
    /// it, and which holder of the post it is (a bureau has several 副局长).
    fn position(&mut self, cat: Cat, town: &str) -> (String, &'static str, &'static str, u64) {
        let township = town.ends_with('乡');
        match cat {
            Cat::Village => {
                let village = format!("{town}{}", self.village());
                // Not 「柳河村村委会主任」 or 「项目股股长」: the extractor reads those as unit
                // 柳河村村 with post 委会主任, and as a person named 项目股.
                match self.rng.below(5) {
                    0 => (village, "党支部书记", "支书", 0),
                    1 => (village, "支书", "党支部书记", 0),
                    2 => (village, "主任", "村主任", 0),
                    3 => (village, "会计", "报账员", 0),
                    _ => {
                        let group = *self.rng.pick(&["一", "二", "三", "四", "五", "六"]);
                        (format!("{village}{group}组"), "组长", "小组长", 0)
                    }
                }
            }
            Cat::Town => {
                let (post, alias, holders) = *self.rng.pick(if township {
                    &[("乡长", "乡长", 1), ("副乡长", "副乡长", 3), ("党委书记", "党委书记", 1)]
                } else {
                    &[("镇长", "镇长", 1), ("副镇长", "副镇长", 3), ("党委书记", "党委书记", 1)]
                });
                (town.to_string(), post, alias, self.rng.below(holders))
            }
            Cat::Bureau => {
                let unit = format!("青岚县{}", self.rng.pick(BUREAUS));
                match self.rng.below(3) {
                    0 => (unit, "局长", "局长", 0),
                    1 => (unit, "副局长", "副局长", self.rng.below(3)),
                    _ => {
                        let post = *self.rng.pick(SECTIONS);
                        (unit, post, post, 0)
                    }
                }
            }
            Cat::School => {
                let school = *self.rng.pick(&["中心小学", "中学", "完全小学"]);
                let (post, alias, holders) = *self.rng.pick(&[("校长", "校长", 1), ("副校长", "副校长", 2)]);
                (format!("{town}{school}"), post, alias, self.rng.below(holders))
            }
            Cat::Clinic => {
                let (post, alias, holders) = *self.rng.pick(&[("院长", "院长", 1), ("副院长", "副院长", 2)]);
                (format!("{town}卫生院"), post, alias, self.rng.below(holders))
            }
            Cat::Station => {
                let (unit, post) = *self.rng.pick(&[
                    ("财政所", "所长"),
                    ("国土所", "所长"),
                    ("农技站", "站长"),
                    ("水利站", "站长"),
                    ("林业站", "站长"),
                ]);
                (format!("{town}{unit}"), post, post, 0)
            }
        }
    }

    /// A new matter: an official not reported before (the name follows from the post, as in a
    /// real county) and an act. The posts of the county bureaus, towns and schools are few:
    /// once they are used up, new matters are about village cadres. (One matter per official:
    /// two letters about different acts of one official share enough words and facts to reach
    /// repeat.same_matter, which would blur the repeat figures.)
    fn matter(&mut self) -> (Matter, u64) {
        const CATS: &[Cat] = &[
            Cat::Village,
            Cat::Village,
            Cat::Village,
            Cat::Village,
            Cat::Village,
            Cat::Village,
            Cat::Town,
            Cat::Town,
            Cat::Bureau,
            Cat::Bureau,
            Cat::School,
            Cat::Clinic,
            Cat::Station,
        ];
        let mut attempt = 0;
        let (town, cat, unit, post, alias, holder, act, key) = loop {
            attempt += 1;
            let town = self.town();
            let cat = if attempt < 8 { *self.rng.pick(CATS) } else { Cat::Village };
            let (unit, post, alias, holder) = self.position(cat, &town);
            let fitting: Vec<usize> = (0..ACTS.len()).filter(|&i| ACTS[i].cats.contains(&cat)).collect();
            let act = *self.rng.pick(&fitting);
            let canonical = if post == "支书" { alias } else { post };
            let key = xinfang::stages::repeat::stable_hash(&format!("{unit}|{canonical}|{holder}"));
            if attempt >= 8 || !self.reported.contains(&key) {
                break (town, cat, unit, post, alias, holder, act, key);
            }
        };
        let canonical = if post == "支书" { alias } else { post };
        // The official's name follows from the post: 支书 and 党支部书记 are the same person.
        let mut official = Rng(xinfang::stages::repeat::stable_hash(&format!("{unit}|{canonical}|{holder}")) | 1);
        let a = &ACTS[act];
        let written = self.date();
        let when = if written.1 > 2 { (written.0, written.1 - self.rng.range(1, 2)) } else { (written.0 - 1, 10) };
        let matter = Matter {
            name: person_name(&mut official),
            unit,
            post,
            alias,
            town,
            cat,
            act,
            amount: Self::round(self.rng.range(a.amount.0, a.amount.1)),
            count: self.rng.range(a.count.0, a.count.1),
            victim: person_name(&mut self.rng),
            eatery: self.rng.below(EATERIES.len() as u64) as usize,
            aside: self.rng.chance(80).then(|| self.rng.below(ASIDES.len() as u64) as usize),
            when,
            written,
            reporter: self.rng.chance(55).then(|| person_name(&mut self.rng)),
        };
        (matter, key)
    }

    fn first(&mut self, m: &Matter) -> Letter {
        let who = format!("{}{}{}", m.unit, m.post, m.name);
        let label = ACTS[m.act].label;
        let salutation = *self.rng.pick(SALUTATIONS);
        let home = self.village();
        let opening = match self.rng.below(5) {
            0 => match &m.reporter {
                Some(r) => format!("{salutation}\n    我是{home}的村民{r}，我要反映{who}的问题。\n"),
                None => format!("{salutation}\n    我是{home}的村民，我要反映{who}的问题。\n"),
            },
            1 => format!("{salutation}\n    {who}涉嫌{label}，群众意见很大，特向组织反映。\n"),
            2 => format!(
                "关于{who}涉嫌{label}的举报\n\n{salutation}\n    被举报人：{}，{}{}。\n",
                m.name, m.unit, m.post
            ),
            3 => format!("{salutation}\n    我们反映的是{who}，主要问题如下。\n"),
            _ => format!("{salutation}\n    我要举报{who}，他涉嫌{label}。\n"),
        };
        let mut body = format!("    {}", detail(m, false));
        if let Some(i) = m.aside {
            body.push_str(&aside(i, m));
        }
        if self.rng.chance(40) {
            let j = self.rng.below(ASIDES.len() as u64) as usize;
            if Some(j) != m.aside {
                body.push_str(&aside(j, m));
            }
        }
        let closing = *self.rng.pick(CLOSINGS);
        let sig = signature(&mut self.rng, m.reporter.as_deref(), &m.town, m.written);
        Letter { text: format!("{opening}{body}\n    {closing}\n{sig}"), kind: Kind::First }
    }

    fn repeat(&mut self) -> Letter {
        let i = self.rng.below(self.matters.len() as u64) as usize;
        let (rng, m) = (&mut self.rng, &self.matters[i]);
        let post = if rng.chance(50) { m.alias } else { m.post };
        let who = format!("{}{post}{}", m.unit, m.name);
        let label = ACTS[m.act].label;
        let mut detail = detail(m, rng.chance(40));
        if let Some(a) = m.aside.filter(|_| rng.chance(50)) {
            detail.push_str(&aside(a, m));
        }
        let salutation = *rng.pick(SALUTATIONS);
        let before = format!("{}年{}月", m.written.0, m.written.1);
        let month = m.written.1 + rng.range(1, 5);
        let (year, month) = if month > 12 { (m.written.0 + 1, month - 12) } else { (m.written.0, month) };
        let date = (year, month, rng.range(1, 28));
        let text = match rng.below(4) {
            0 => format!(
                "{salutation}\n    我再次反映{who}涉嫌{label}的问题。{before}我已经写信反映过，至今没有回音。\n    {detail}\n    请组织上重视，尽快查处。\n"
            ),
            1 => format!(
                "{salutation}\n    关于{who}涉嫌{label}的事，{before}反映过，一直没有答复，现在再次反映。\n    {detail}\n"
            ),
            2 => format!(
                "{salutation}\n    {before}我们反映过{who}的问题，到现在石沉大海，只好再次反映。\n    {detail}\n    {}\n",
                rng.pick(CLOSINGS)
            ),
            _ => format!(
                "关于{who}涉嫌{label}的再次举报\n\n{salutation}\n    被举报人：{}，{}{post}。\n    {detail}\n    这件事{before}就已经反映过，至今没有答复。\n",
                m.name, m.unit
            ),
        };
        let reporter = if rng.chance(60) { m.reporter.as_deref() } else { None };
        let sig = signature(rng, reporter, &m.town, date);
        Letter { text: format!("{text}{sig}"), kind: Kind::Repeat }
    }

    fn out_of_scope(&mut self) -> Letter {
        let town = self.town();
        let village = self.village();
        let me = self.name();
        let other = self.name();
        let other_surname: String = other.chars().take(1).collect();
        let date = self.date();
        let n = self.rng.range(2, 9);
        let amount = Self::round(self.rng.range(3_000, 90_000));
        let salutation = *self.rng.pick(SALUTATIONS);
        let body = match self.rng.below(5) {
            0 => format!(
                "    我是{town}{village}的{me}。我家和隔壁{other_surname}家因为宅基地地界的事闹了{n}年，{}，村里调解了几次都没有结果。请纪委帮我解决这个纠纷。\n",
                self.rng.pick(&[
                    "对方建房占了我家几尺宅基地",
                    "他家屋檐滴水落到我家院子里",
                    "他家把界碑挪到了我家菜地里",
                    "两家为一条排水沟吵了好几回",
                ])
            ),
            1 => format!(
                "    我们是在{town}{}干活的{n}个农民工，包工头{other}拖欠我们工资{amount}元，{}。请帮我们讨薪。\n",
                self.rng.pick(&["工地", "砖厂", "一个楼盘", "修路工地"]),
                self.rng.pick(&["已经拖了大半年", "过年都回不了家", "老板跑路了电话也打不通", "打了欠条一直不给"])
            ),
            2 => format!(
                "    我是县城{}小区的业主{me}，物业公司{}，业主去找，物业公司态度很差。请纪委管一管这个物业公司。\n",
                self.rng.pick(&["锦绣", "阳光", "金桂", "翠苑", "滨江", "华府", "书香", "东方"]),
                self.rng.pick(&[
                    "乱收物业费，每个月多收几十元",
                    "电梯坏了几个月也不修",
                    "停车费说涨就涨",
                    "小区里的绿地被改成了停车位",
                ])
            ),
            3 => format!(
                "    我是{town}{village}的{me}，{}年{}月{}，被骗了{amount}元，我报了案，到现在钱也没有追回来。请帮我把钱要回来。\n",
                date.0,
                date.1,
                self.rng.pick(&["在网上买东西", "接到一个冒充客服的电话", "在集市上买了假种子", "有人说能帮我贷款"])
            ),
            _ => format!(
                "    我父亲{other}去世后留下{n}间老房子，我哥哥一个人占着，不让我们姐妹分遗产，{}。请纪委帮我们评评理。\n",
                self.rng.pick(&["找了村里调解也没用", "我们想打官司又没有钱", "他还把房子租出去收钱"])
            ),
        };
        let mut personal = String::new();
        for _ in 0..3 {
            let age = self.rng.range(35, 82).to_string();
            let template = *self.rng.pick(PERSONAL);
            let line = fill(template, &[("age", &age), ("place", &town)]);
            if !personal.contains(&line) {
                personal.push_str(&line);
            }
        }
        let phone = phone(&mut self.rng);
        let sig = format!("{SIGN_PAD}{me}\n{SIGN_PAD}电话：{phone}\n{SIGN_PAD}{}年{}月{}日\n", date.0, date.1, date.2);
        Letter { text: format!("{salutation}\n{body}    {personal}\n{sig}"), kind: Kind::OutOfScope }
    }

    fn suggestion(&mut self) -> Letter {
        const IDEAS: &[&str] = &[
            "建议县纪委统一更新各村的举报公示牌，把12388、来信地址和网上举报的二维码都印上。",
            "12388有时候打过去占线，建议多安排点人手，或者留言以后回个电话。",
            "建议逢赶集的日子到乡镇设个咨询点，宣传一下哪些事归纪委管，免得老百姓跑冤枉路。",
            "希望纪委加强对村务公开的监督，每个季度把村级财务公示出来，接受群众监督。",
            "基层减负还要抓实，督查检查太多，村干部一半的时间在填表，建议纪委管一管这种形式主义。",
            "建议在县政府网站上公开纪委办理群众来信的情况，让群众知道反映的问题有没有下文。",
            "希望多在乡镇干部中开展廉政教育，作风建设要常抓不懈。",
            "建议对新提拔的干部都开展一次廉洁谈话，把规矩讲在前头。",
            "建议把惠民资金的发放名单在村里张榜公示，公示期不少于七天。",
            "希望纪委的同志多到村里走一走，听听老百姓的意见。",
            "建议在每个村选一名群众监督员，定期向纪委反映情况。",
            "有的干部办事效率太低，建议把为民服务的事项办理时限公开出来。",
            "建议把八项规定的具体要求印成小册子发到各家各户。",
            "希望对举报人的信息严格保密，这样群众才敢反映问题。",
            "建议开通微信举报渠道，年轻人在外地打工也能反映问题。",
            "建议对村干部的考核多听群众意见，不能只看材料。",
            "有的部门办事要跑好几趟，建议推行一次办好，减少群众跑腿。",
            "建议纪委定期通报查处的典型案件，起到警示作用。",
            "希望对群众反映的问题限期答复，不要一拖再拖。",
            "建议在村务监督委员会里多吸收一些老党员和退休教师。",
            "有些干部下乡只是走过场，拍几张照片就走，建议纠正这种作风。",
            "建议把涉农补贴直接打到农户的一卡通上，减少中间环节。",
            "希望在学校里开展廉洁文化教育，从娃娃抓起。",
            "建议对干部的婚丧喜庆事宜实行报备，防止大操大办。",
        ];
        const REMARKS: &[&str] = &[
            "我在{town}生活了几十年，对基层的情况比较了解。",
            "这些想法是平时和乡亲们聊天时大家提的。",
            "近几年风气好了很多，老百姓是看在眼里的。",
            "我平时喜欢看新闻，对反腐败的事情很关心。",
            "有些话不一定对，请领导批评指正。",
            "我们村的老人也有同样的想法，托我一起写上。",
            "看到纪委公布的举报方式，就想着写几句。",
            "我也是党员，觉得有责任把看到的情况说出来。",
            "写这些不是为了告谁的状，只是希望工作做得更好。",
            "希望这封信能转给有关的领导看一看。",
        ];
        let town = self.town();
        let who = *self.rng.pick(&["退休教师", "老党员", "村民代表", "个体户", "乡村医生", "退伍军人", "返乡青年"]);
        let mut picked: Vec<usize> = Vec::new();
        let k = self.rng.range(2, 3) as usize;
        while picked.len() < k {
            let i = self.rng.below(IDEAS.len() as u64) as usize;
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        let numerals = ["一", "二", "三", "四"];
        let items: String =
            picked.iter().enumerate().map(|(j, &i)| format!("    {}、{}\n", numerals[j], IDEAS[i])).collect();
        let me = self.name();
        let phone = phone(&mut self.rng);
        let date = self.date();
        let salutation = *self.rng.pick(&["县纪委的同志：", "青岚县纪委监委：", "尊敬的县纪委领导："]);
        let intro = *self.rng.pick(&[
            "写这封信是想提几条建议。",
            "平时看到一些情况，提几点意见供参考。",
            "对纪检监察工作有几点想法。",
        ]);
        let (first, second) = (*self.rng.pick(REMARKS), *self.rng.pick(REMARKS));
        let before = fill(first, &[("town", &town)]);
        let after =
            if second != first && self.rng.chance(50) { fill(second, &[("town", &town)]) } else { String::new() };
        Letter {
            text: format!(
                "{salutation}\n    我是{town}的一名{who}，{intro}{before}\n{items}    {after}以上建议仅供参考。\n{SIGN_PAD}建议人：{me}\n{SIGN_PAD}联系电话：{phone}\n{SIGN_PAD}{}年{}月{}日\n",
                date.0, date.1, date.2
            ),
            kind: Kind::Suggestion,
        }
    }
}

/// The file name of letter `i`: name order is generation order.
fn letter_file(i: usize) -> String {
    format!("letter-{i:07}.txt")
}

/// Writes `n` letters into `dir`; returns what each is meant to be.
fn write_letters(dir: &Path, n: usize) -> Result<Vec<Kind>, BenchIngestError> {
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let mut g = Generator::new();
    let mut kinds = Vec::with_capacity(n);
    for i in 0..n {
        let letter = g.next_letter();
        let path = dir.join(letter_file(i));
        std::fs::write(&path, letter.text.as_bytes()).map_err(io_err("cannot write", &path))?;
        kinds.push(letter.kind);
    }
    Ok(kinds)
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// A directory removed when dropped (also when the benchmark fails half-way).
pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A field of /proc/self/status (VmRSS, VmHWM) in MiB; `None` where there is no procfs.
pub(crate) fn proc_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: f64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so that the peak is that of one backend's
/// run. False when the kernel does not allow it: VmHWM is then the process peak so far.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Total size of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    xinfang::store::files_below(dir).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// One backend's figures.
struct Row {
    backend: &'static str,
    letters: usize,
    secs: f64,
    registered: usize,
    failed: usize,
    /// The first failed letter and why.
    first_failure: Option<String>,
    repeats: usize,
    /// Repeats found for letters generated as repeats.
    true_repeats: usize,
    new_facts: usize,
    classes: [usize; 5],
    rss_before: Option<f64>,
    rss_after: Option<f64>,
    peak: Option<f64>,
    peak_reset: bool,
    db_bytes: Option<u64>,
    file_bytes: u64,
}

/// What every backend's run shares.
struct Run<'a> {
    cfg: &'a Config,
    understander: &'a Arc<Understander>,
    pool: &'a OcrPool,
    letters_dir: &'a Path,
    kinds: &'a [Kind],
    batch: usize,
}

impl Run<'_> {
    /// Ingests every letter into the store at `url`, with originals under `data_dir`.
    async fn backend(&self, backend: &'static str, url: &str, data_dir: &Path) -> Result<Row, BenchIngestError> {
        let mut cfg = self.cfg.clone();
        cfg.store.data_dir = data_dir.to_path_buf();
        let cfg = Arc::new(cfg);
        let store = Store::open(url).await?;
        let intake = Intake::new(Arc::clone(&cfg), store.clone(), self.pool.clone(), Arc::clone(self.understander));
        let total = self.kinds.len();
        let peak_reset = reset_peak();
        let rss_before = proc_mib("VmRSS");
        let mut row = Row {
            backend,
            letters: total,
            secs: 0.0,
            registered: 0,
            failed: 0,
            first_failure: None,
            repeats: 0,
            true_repeats: 0,
            new_facts: 0,
            classes: [0; 5],
            rss_before,
            rss_after: None,
            peak: None,
            peak_reset,
            db_bytes: None,
            file_bytes: 0,
        };
        let start = Instant::now();
        let mut done = 0usize;
        let mut first = 0usize;
        // Rate of the last 5,000 letters beside the cumulative one: flat if a lookup costs
        // the same however large the store has grown.
        let mut lap = start;
        while first < total {
            let end = (first + self.batch).min(total);
            let inputs: Vec<LetterInput> = (first..end)
                .map(|i| {
                    let path = self.letters_dir.join(letter_file(i));
                    LetterInput { is_folder: false, ..LetterInput::at(&path) }
                })
                .collect();
            let reports = intake
                .run(inputs, |_| {
                    done += 1;
                    if done.is_multiple_of(5000) {
                        let secs = start.elapsed().as_secs_f64();
                        eprintln!(
                            "{backend}: {done}/{total} letters, {secs:.1} s, {:.1} letters/s, the last 5000 at {:.1}/s",
                            done as f64 / secs.max(1e-9),
                            5000.0 / lap.elapsed().as_secs_f64().max(1e-9)
                        );
                        lap = Instant::now();
                    }
                })
                .await?;
            for (report, kind) in reports.iter().zip(&self.kinds[first..end]) {
                row.tally(report, *kind);
            }
            first = end;
        }
        row.secs = start.elapsed().as_secs_f64();
        row.peak = proc_mib("VmHWM");
        row.rss_after = proc_mib("VmRSS");
        drop(intake);
        store.close().await;
        Ok(row)
    }
}

impl Row {
    fn tally(&mut self, r: &LetterReport, kind: Kind) {
        match r.status {
            IngestStatus::Registered => self.registered += 1,
            IngestStatus::Failed => {
                self.failed += 1;
                if self.first_failure.is_none() {
                    self.first_failure = Some(format!("{}: {}", r.source, r.error.as_deref().unwrap_or("?")));
                }
            }
            IngestStatus::Duplicate => {}
        }
        let d = r.decision.as_ref();
        if d.is_some_and(|d| d.repeat_of.is_some()) {
            self.repeats += 1;
            if kind == Kind::Repeat {
                self.true_repeats += 1;
            }
        }
        if d.is_some_and(|d| d.new_facts_of.is_some()) {
            self.new_facts += 1;
        }
        if let Some(c) = d.map(|d| d.class) {
            if let Some(i) = LetterClass::ALL.iter().position(|x| *x == c) {
                self.classes[i] += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL administration

/// The URL of database `name` on the server of the admin URL `admin` (path replaced, query kept).
pub(crate) fn database_url(admin: &str, name: &str) -> Result<String, BenchIngestError> {
    let bad = || BenchIngestError::PostgresUrl { url: display_url(admin) };
    let scheme_end = admin.find("://").ok_or_else(bad)?;
    if !matches!(&admin[..scheme_end], "postgres" | "postgresql") {
        return Err(bad());
    }
    let rest = &admin[scheme_end + 3..];
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q..]),
        None => (rest, ""),
    };
    let authority = before_query.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad());
    }
    Ok(format!("{}://{authority}/{name}{query}", &admin[..scheme_end]))
}

pub(crate) async fn admin_exec(admin: &str, sql: &str) -> Result<(), BenchIngestError> {
    use sqlx::Connection;
    let fail = |action: String| {
        move |source: sqlx::Error| BenchIngestError::Postgres { url: display_url(admin), action, source }
    };
    let mut conn = sqlx::AnyConnection::connect(admin).await.map_err(fail("cannot connect".into()))?;
    let result = sqlx::query(sql).execute(&mut conn).await.map(|_| ()).map_err(fail(sql.to_string()));
    let _ = conn.close().await;
    result
}

async fn database_bytes(admin: &str, name: &str) -> Option<u64> {
    use sqlx::{Connection, Row as _};
    let mut conn = sqlx::AnyConnection::connect(admin).await.ok()?;
    let row = sqlx::query("SELECT pg_database_size($1) AS n").bind(name).fetch_one(&mut conn).await.ok();
    let _ = conn.close().await;
    row?.try_get::<i64, _>("n").ok().and_then(|n| u64::try_from(n).ok())
}

// ---------------------------------------------------------------------------------------------
// The command

/// Resolves on SIGTERM or Ctrl-C, so that the temporary files and database are removed.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return std::future::pending().await };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        },
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn fmt_mib(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// `xinfang bench ingest`: generates `letters` text letters (realistic Chinese 检举控告 letters with
/// fictitious people, about a fifth of them repeats of earlier ones about the same person and matter, a few
/// out-of-scope and 批评建议 ones), writes them as .txt files into a temporary folder, and ingests them through
/// the real intake (Intake::run: originals stored, queue, rules, repeat detection, registration) into a fresh
/// store for each backend named: SQLite in a temporary data dir always, and PostgreSQL when `postgres_url`
/// (an admin URL like postgres://postgres@127.0.0.1:5432/postgres) is given: create a fresh database
/// xinfang_bench_<pid>_<n> there and drop it after. Prints, per backend, in one table: letters, seconds,
/// letters/s, repeats found, peak resident memory (VmHWM from /proc/self/status, in MiB — note that
/// it is the process peak, so also print the RSS before and after each backend run: VmRSS), and store size
/// where cheap. Progress to stderr every 5000 letters.
pub async fn ingest(
    cfg: &Config,
    letters: usize,
    postgres_url: Option<&str>,
    batch: usize,
) -> Result<(), BenchIngestError> {
    let batch = batch.max(1);
    let pid = std::process::id();
    let stamp = chrono::Utc::now().timestamp_millis();
    let root = TempDir(std::env::temp_dir().join(format!("xinfang-bench-ingest-{pid}-{stamp}")));
    let pg = match postgres_url {
        Some(admin) => {
            let name = format!("xinfang_bench_{pid}_{stamp}");
            Some((admin, database_url(admin, &name)?, name))
        }
        None => None,
    };
    let understander = Arc::new(Understander::new(&cfg.catalogue()?)?);
    let letters_dir = root.0.join("letters");
    let t = Instant::now();
    let kinds = write_letters(&letters_dir, letters)?;
    let count = |k: Kind| kinds.iter().filter(|x| **x == k).count();
    let generated_repeats = count(Kind::Repeat);
    eprintln!(
        "generated {letters} letters in {:.1} s: {} first accusations, {generated_repeats} repeats, {} out of scope, {} 批评建议 ({})",
        t.elapsed().as_secs_f64(),
        count(Kind::First),
        count(Kind::OutOfScope),
        count(Kind::Suggestion),
        letters_dir.display()
    );
    let pool = OcrPool::start(&cfg.ocr, &cfg.limits, 1)?;
    let run = Run { cfg, understander: &understander, pool: &pool, letters_dir: &letters_dir, kinds: &kinds, batch };
    let work = async {
        let mut rows = Vec::new();
        let sqlite_dir = root.0.join("sqlite");
        let mut sqlite_cfg = cfg.clone();
        sqlite_cfg.store.data_dir = sqlite_dir.clone();
        let mut row = run.backend("sqlite", &sqlite_cfg.default_database_url(), &sqlite_dir).await?;
        let db_bytes: u64 = ["xinfang.db", "xinfang.db-wal", "xinfang.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(sqlite_dir.join(f)).ok().map(|m| m.len()))
            .sum();
        row.db_bytes = Some(db_bytes);
        row.file_bytes = dir_bytes(&sqlite_dir).saturating_sub(db_bytes);
        let _ = std::fs::remove_dir_all(&sqlite_dir);
        rows.push(row);
        if let Some((admin, url, name)) = &pg {
            admin_exec(admin, &format!("CREATE DATABASE {name}")).await?;
            let pg_dir = root.0.join("postgres");
            let result = run.backend("postgresql", url, &pg_dir).await;
            let size = if result.is_ok() { database_bytes(admin, name).await } else { None };
            let dropped = admin_exec(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            let mut row = result?;
            dropped?;
            row.db_bytes = size;
            row.file_bytes = dir_bytes(&pg_dir);
            rows.push(row);
        }
        Ok::<_, BenchIngestError>(rows)
    };
    let result = tokio::select! {
        r = work => r,
        signal = interrupted() => Err(BenchIngestError::Interrupted(signal)),
    };
    pool.shutdown().await;
    if let (Err(_), Some((admin, _, name))) = (&result, &pg) {
        // Stopped between creating its database and dropping it: drop it now.
        let _ = admin_exec(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
    let rows = result?;

    println!(
        "{letters} generated text letters ({generated_repeats} written as repeats of an earlier letter), batches of {batch}, rules {}",
        understander.rules_version()
    );
    println!(
        "the issue asks for \"letters per second and peak memory, on SQLite and on PostgreSQL\" (no numeric target): side by side"
    );
    println!();
    println!(
        "{:<11} {:>8} {:>9} {:>10} {:>15} {:>6} {:>9} {:>7} {:>11} {:>10} {:>9} {:>8} {:>10}",
        "backend",
        "letters",
        "seconds",
        "letters/s",
        "repeats found",
        "false",
        "new facts",
        "failed",
        "RSS before",
        "RSS after",
        "peak RSS",
        "db MiB",
        "files MiB"
    );
    for r in &rows {
        println!(
            "{:<11} {:>8} {:>9.1} {:>10.1} {:>15} {:>6} {:>9} {:>7} {:>11} {:>10} {:>9} {:>8} {:>10.1}",
            r.backend,
            r.letters,
            r.secs,
            r.letters as f64 / r.secs.max(1e-9),
            format!("{}/{}", r.repeats, generated_repeats),
            r.repeats - r.true_repeats,
            r.new_facts,
            r.failed,
            fmt_mib(r.rss_before),
            fmt_mib(r.rss_after),
            format!("{}{}", fmt_mib(r.peak), if r.peak_reset { "" } else { "*" }),
            fmt_mib(r.db_bytes.map(mib)),
            mib(r.file_bytes)
        );
    }
    println!();
    for r in &rows {
        let classes: Vec<String> =
            LetterClass::ALL.iter().zip(r.classes).map(|(c, n)| format!("{} {n}", c.as_str())).collect();
        println!("{:<11} {} registered; {}", r.backend, r.registered, classes.join(", "));
        if let Some(f) = &r.first_failure {
            println!("{:<11} {} failed, the first: {f}", r.backend, r.failed);
        }
    }
    println!();
    println!(
        "repeats found: letters decided repeat_of an earlier case / letters generated as repeats; false: found for"
    );
    println!("letters not generated as repeats. Memory in MiB (VmRSS, VmHWM of /proc/self/status); the peak is reset");
    let refused =
        if rows.iter().all(|r| r.peak_reset) { "" } else { "; * the reset was refused: the process peak so far" };
    println!("before each backend (/proc/self/clear_refs){refused}. db: SQLite file, or");
    println!("pg_database_size; files: stored originals. Generation and store opening are not timed.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(n: usize) -> Vec<Letter> {
        let mut g = Generator::new();
        (0..n).map(|_| g.next_letter()).collect()
    }

    #[test]
    fn generator_is_deterministic_distinct_and_repeats_a_fifth() {
        let a = letters(2000);
        let b = letters(2000);
        assert_eq!(a.len(), 2000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text && x.kind == y.kind));
        let distinct: HashSet<&str> = a.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(distinct.len(), 2000);
        let count = |k: Kind| a.iter().filter(|l| l.kind == k).count();
        assert!((300..=500).contains(&count(Kind::Repeat)), "{} repeats", count(Kind::Repeat));
        assert!(count(Kind::OutOfScope) > 20 && count(Kind::Suggestion) > 10);
        assert!(a.iter().filter(|l| l.kind == Kind::Repeat).all(|l| l.text.contains("反映")));
        assert!(a.iter().all(|l| !l.text.contains('{')), "a placeholder left unfilled");
    }

    #[test]
    fn database_url_replaces_the_path_and_keeps_the_query() {
        let u = |a: &str| database_url(a, "xb").ok();
        assert_eq!(
            u("postgres://postgres@127.0.0.1:5432/postgres").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/xb")
        );
        assert_eq!(
            u("postgresql://u:p@h/db?sslmode=disable").as_deref(),
            Some("postgresql://u:p@h/xb?sslmode=disable")
        );
        assert_eq!(u("postgres://h:5432").as_deref(), Some("postgres://h:5432/xb"));
        assert!(u("sqlite://x.db").is_none());
    }
}
