//! Extraction: who the letter is about and who wrote it. Finds the people in office it names
//! (name — also partial forms like 孙某某 or 刘某 — unit, post, and rank on the configured
//! ladder), private parties and ordinary party members, the reporter's identity (name, phone,
//! ID number, address, unit), amounts, dates and mentions that the letter went elsewhere.
//! Pure after construction. It never classifies: it reports what is written and where.

use crate::config::catalogue::Catalogue;
use crate::stages::normalize::is_han;
use crate::stages::tag::{Category, Tag};
use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use thiserror::Error;
use xinfang_models::ReporterIdentity;

/// Problems compiling the extraction rules.
#[derive(Debug, Error)]
pub enum ExtractError {
    #[error("cannot compile extraction patterns: {0}")]
    Build(String),
}

/// What kind of person a mention is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds a post in a public body (a 监察对象 or party cadre).
    Official,
    /// A party member without a post (普通党员).
    PartyMember,
    /// A private party (老板, 邻居 …).
    Private,
}

/// One mention of a person in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    pub name: Option<String>,
    pub unit: Option<String>,
    pub post: Option<String>,
    pub rank: Option<String>,
    pub role: Role,
    pub start: usize,
    pub end: usize,
    /// Given under a 被举报人/被反映人 label or right after 举报/反映.
    pub labelled: bool,
    /// The writer speaking of themselves (我是…村主任).
    pub self_ref: bool,
}

/// A value found in the text with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub value: String,
    pub start: usize,
}

/// What extraction found.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    pub mentions: Vec<Mention>,
    pub reporter: ReporterIdentity,
    /// Amounts in yuan.
    pub amounts: Vec<Found>,
    pub dates: Vec<Found>,
    /// Counts of things (三百多亩, 四十桌, 两箱): details a reader could check.
    pub quantities: Vec<Found>,
    pub copied_to: Vec<String>,
    /// Byte offset where the signature block (落款) is taken to begin.
    pub signature_start: usize,
}

const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝黎";
pub(crate) const COMPOUND_SURNAMES: [&str; 10] =
    ["欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "令狐", "夏侯", "慕容", "公孙"];
/// Characters that end a given name: function words, kinship and role words.
const NAME_STOP: &str = "一二三四五六七八九十查请的是在把和与及将被给对向从让叫说还又也就都等们家以为了着过到这那其他她我你您镇村县乡市区局所组爷老汉婆娘哥姐弟妹叔伯嫂儿子女媳夫妻事钱款元万块啊吧呢吗，。、；：！？（）()《》“”‘’ \n\t收拿贪搞私利用去来找要不没有很太先后上下";
/// Characters that stop the backwards scan for a post's unit.
const UNIT_STOP: &str =
    "关于过找到把与及被给对向从让叫说还又也就都是了在我你他她们报映告查任当做干系称原前现即及其这那个名位";
/// Place suffixes: a would-be name followed by one of these is a place (石桥镇, 白沙乡).
const PLACE_AFTER: &str = "镇乡村县市区街路组社河山湾坪桥沟岭塘坝";

/// Compiled extraction rules.
pub struct Extractor {
    posts: AhoCorasick,
    post_words: Vec<(String, usize)>,
    post_rules: Vec<crate::config::catalogue::PostRule>,
    public_units: AhoCorasick,
    private_roles: AhoCorasick,
    subject_labels: AhoCorasick,
    name_labels: AhoCorasick,
    address_labels: AhoCorasick,
    unit_labels: AhoCorasick,
    unit_suffixes: Vec<String>,
    anonymous: Vec<String>,
    surnames: std::collections::HashSet<char>,
    phone: Regex,
    landline: Regex,
    id_number: Regex,
    amount: Regex,
    amount_cn: Regex,
    date: Regex,
    quantity: Regex,
    sign_unit: Regex,
    /// Whether a string is a common word of the segmenter's dictionary (安排 is not a name).
    is_word: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

fn automaton(words: &[String]) -> Result<AhoCorasick, ExtractError> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(words.iter().filter(|w| !w.trim().is_empty()))
        .map_err(|e| ExtractError::Build(e.to_string()))
}

fn re(p: &str) -> Result<Regex, ExtractError> {
    Regex::new(p).map_err(|e| ExtractError::Build(e.to_string()))
}

impl Extractor {
    /// `is_word` tells common words from names (the segmenter's dictionary).
    pub fn new(cat: &Catalogue, is_word: Box<dyn Fn(&str) -> bool + Send + Sync>) -> Result<Extractor, ExtractError> {
        let r = &cat.rules;
        let mut post_words = Vec::new();
        for (i, p) in r.post.iter().enumerate() {
            for w in &p.words {
                if !post_words.iter().any(|(x, _): &(String, usize)| x == w) {
                    post_words.push((w.clone(), i));
                }
            }
        }
        let words: Vec<String> = post_words.iter().map(|(w, _)| w.clone()).collect();
        let mut suffixes = r.units.suffixes.clone();
        suffixes.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        Ok(Extractor {
            posts: automaton(&words)?,
            post_words,
            post_rules: r.post.clone(),
            public_units: automaton(&r.units.public)?,
            private_roles: automaton(&r.units.private)?,
            subject_labels: automaton(&r.reporter.subject_labels)?,
            name_labels: automaton(&r.reporter.name_labels)?,
            address_labels: automaton(&r.reporter.address_labels)?,
            unit_labels: automaton(&r.reporter.unit_labels)?,
            unit_suffixes: suffixes,
            anonymous: r.reporter.anonymous_signatures.clone(),
            surnames: SURNAMES.chars().collect(),
            phone: re(r"(?:^|[^0-9])(1[3-9][0-9](?:[ -]?[0-9]){8})(?:[^0-9]|$)")?,
            landline: re(r"(?:^|[^0-9])(0[0-9]{2,3}-?[0-9]{7,8})(?:[^0-9]|$)")?,
            id_number: re(r"(?:^|[^0-9])([1-9][0-9]{16}[0-9Xx])(?:[^0-9]|$)")?,
            amount: re(r"([0-9]+(?:\.[0-9]+)?)\s*(万元|万块|万|千元|千块|元|块钱|块)")?,
            amount_cn: re(r"([一二两三四五六七八九十百千]+)(万元|万块钱|万块|万|千元|千块|元|块钱|块)")?,
            date: re(
                r"[0-9]{4}年(?:[0-9]{1,2}月)?(?:[0-9]{1,2}日)?|[0-9]{1,2}月[0-9]{1,2}[日号]|(?:去年|今年|前年|上个月|这个月|上半年|下半年)(?:[0-9一二三四五六七八九十]{1,2}月)?|春节|腊月|正月|端午|中秋|国庆",
            )?,
            quantity: re(
                r"([0-9]+|[两二三四五六七八九十百千几]+[一二三四五六七八九十百千]*)(?:多|来|余)?(亩|户|桌|次|回|辆|台|套|间|栋|斤|吨|公里|平方|箱|条|瓶|头|趟|笔|份)",
            )?,
            is_word,
            sign_unit: re(
                r"([\p{Han}]{2,24}?(?:公司|学校|小学|中学|医院|卫生院|合作社|厂|局|所|站|中心|村委会|居委会|协会|委员会))",
            )?,
        })
    }

    /// Extracts from normalised `text`, using the catalogue's tags (party words, 抄送).
    pub fn extract(&self, text: &str, tags: &[Tag], token_bounds: &dyn Fn(usize) -> bool) -> Extracted {
        let signature_start = signature_start(text);
        let mut mentions = Vec::new();
        let mut covered: Vec<(usize, usize)> = Vec::new();
        // People named by their post.
        for m in self.posts.find_iter(text) {
            let (word, rule) = &self.post_words[m.pattern().as_usize()];
            let (unit, post) = self.unit_and_post(text, m.start(), word);
            let (unit, surname_only) = match (&unit, self.surname_before(text, m.start())) {
                (None, Some((surname, at))) => (self.unit_before(text, at), Some(surname)),
                (_, s) => (unit, s.map(|x| x.0)),
            };
            // 「王副镇长管修路」: a surname right before the post names the person; what follows
            // is what they do.
            let name = self
                .surname_and_post(text, m.start(), token_bounds)
                .or_else(|| self.name_after(text, m.end(), token_bounds))
                .or_else(|| self.name_before(text, unit_start(text, m.start(), unit.as_deref()), token_bounds))
                .or_else(|| surname_only.map(|s| (format!("{s}某"), m.start())));
            let rank = self.rank(*rule, unit.as_deref());
            let self_ref = is_self_reference(text, m.start(), unit.as_deref());
            covered.push((m.start(), m.end()));
            // 「早些年当过生产队长」: a post held once, describing someone already named.
            if name.is_none() && is_former_post(text, unit_start(text, m.start(), unit.as_deref())) {
                continue;
            }
            mentions.push(Mention {
                name: name.map(|n| n.0),
                unit,
                post: Some(post),
                rank: Some(rank),
                role: Role::Official,
                start: m.start(),
                end: m.end(),
                labelled: false,
                self_ref,
            });
        }
        // Staff of a public body named without a post: 「县劳动监察大队的李某」.
        for m in self.public_units.find_iter(text) {
            if covered.iter().any(|&(s, e)| m.start() < e && s < m.end() + 3) {
                continue;
            }
            let at = skip_filler(text, m.end(), &["的工作人员", "工作人员", "的"]);
            if let Some((name, end)) = self.name_after(text, at, token_bounds) {
                let unit = self.unit_before(text, m.end());
                let rank = self.general_rank(unit.as_deref());
                mentions.push(Mention {
                    name: Some(name),
                    unit,
                    post: None,
                    rank: Some(rank),
                    role: Role::Official,
                    start: m.start(),
                    end,
                    labelled: false,
                    self_ref: false,
                });
            }
        }
        // Private parties: 老板王某.
        for m in self.private_roles.find_iter(text) {
            let name = self.name_after(text, m.end(), token_bounds).map(|n| n.0);
            mentions.push(Mention {
                name,
                unit: None,
                post: Some(text[m.start()..m.end()].to_string()),
                rank: None,
                role: Role::Private,
                start: m.start(),
                end: m.end(),
                labelled: false,
                self_ref: false,
            });
        }
        // Party members without a post: 「党员张某某」「张三是党员」.
        for t in tags.iter().filter(|t| t.is(|c| c == Category::Party)) {
            if t.start >= signature_start || covered.iter().any(|&(s, e)| t.start < e + 6 && s < t.end) {
                continue;
            }
            let after = self.name_after(text, t.end, token_bounds);
            let before = || {
                let fillers = ["是一名", "是一个", "是个", "也是", "是", "（", "(", "，"];
                let head = strip_filler(strip_filler(&text[..t.start], &fillers), &fillers);
                self.name_before(text, head.len(), token_bounds)
            };
            if let Some((name, _)) = after.or_else(before) {
                mentions.push(Mention {
                    name: Some(name),
                    unit: None,
                    post: None,
                    rank: Some("普通党员".into()),
                    role: Role::PartyMember,
                    start: t.start,
                    end: t.end,
                    labelled: false,
                    self_ref: false,
                });
            }
        }
        self.labelled_subjects(text, &mut mentions, token_bounds);
        // Later mentions by name alone (「钱立新具体负责」) are mentions of the same person.
        let named: Vec<Mention> = mentions
            .iter()
            .filter(|m| m.name.as_deref().is_some_and(|n| n.chars().count() >= 2) && !m.self_ref)
            .cloned()
            .collect();
        let mut seen_names = std::collections::HashSet::new();
        for m in named {
            let Some(name) = m.name.clone() else { continue };
            if !seen_names.insert(name.clone()) {
                continue;
            }
            for (pos, _) in text.match_indices(name.as_str()) {
                if !mentions.iter().any(|x| pos >= x.start && pos <= x.end) {
                    mentions.push(Mention { start: pos, end: pos + name.len(), labelled: false, ..m.clone() });
                }
            }
        }
        mentions.sort_by_key(|m| m.start);
        let reporter = self.reporter(text, signature_start, token_bounds);
        Extracted {
            mentions,
            reporter,
            amounts: self.amounts(text),
            dates: self
                .date
                .find_iter(text)
                .map(|m| Found { value: m.as_str().to_string(), start: m.start() })
                .collect(),
            quantities: self
                .quantity
                .find_iter(text)
                .map(|m| Found { value: m.as_str().to_string(), start: m.start() })
                .collect(),
            copied_to: copied_to(text, tags),
            signature_start,
        }
    }

    /// Mentions under 被举报人/被反映人 labels, and names right after 举报/反映.
    fn labelled_subjects(&self, text: &str, mentions: &mut Vec<Mention>, bounds: &dyn Fn(usize) -> bool) {
        for m in self.subject_labels.find_iter(text) {
            if let Some(block) = self.subject_block(text, m.start(), bounds) {
                mentions.retain(|x| x.end <= block.start || x.start >= block.end);
                mentions.push(block);
                continue;
            }
            let line_end = text[m.end()..].find('\n').map_or(text.len(), |i| m.end() + i);
            let at = skip_chars(text, m.end(), &['：', ':', ' ', '是', '为']);
            let name = self.name_after(text, at, bounds).map(|n| n.0);
            let mut found = false;
            for men in mentions.iter_mut().filter(|x| x.start >= m.end() && x.start < line_end) {
                men.labelled = true;
                if men.name.is_none() {
                    men.name.clone_from(&name);
                }
                found = true;
            }
            if !found {
                if let Some(name) = name {
                    mentions.push(Mention {
                        name: Some(name),
                        unit: None,
                        post: None,
                        rank: None,
                        role: Role::Official,
                        start: m.start(),
                        end: line_end,
                        labelled: true,
                        self_ref: false,
                    });
                }
            }
        }
        for verb in ["举报", "反映", "检举", "控告", "关于"] {
            let mut from = 0;
            while let Some(i) = text[from..].find(verb) {
                let pos = from + i + verb.len();
                from = pos;
                let at = skip_filler(text, pos, &["我们村的", "我们村", "我村的", "我村", "本村的", "本村", "一下"]);
                let close = |x: &Mention| {
                    x.start >= at && x.start <= at + 36 && !text[at..x.start].contains(['，', '。', '；', '\n', '、'])
                };
                if let Some(men) = mentions.iter_mut().find(|x| close(x)) {
                    men.labelled = true;
                    continue;
                }
                // 「举报方式」「反映情况」: a common word after the verb is not a name.
                let prefix_is_word = |name: &str| {
                    let two: String = name.chars().take(2).collect();
                    name.chars().count() == 3 && (self.is_word)(&two)
                };
                if let Some((name, end)) = self.name_after(text, at, bounds).filter(|(n, _)| !prefix_is_word(n)) {
                    if let Some(men) = mentions.iter_mut().find(|x| x.name.as_deref() == Some(name.as_str())) {
                        men.labelled = true;
                    } else {
                        mentions.push(Mention {
                            name: Some(name),
                            unit: None,
                            post: None,
                            rank: None,
                            role: Role::Official,
                            start: at,
                            end,
                            labelled: true,
                            self_ref: false,
                        });
                    }
                }
            }
        }
    }

    /// A form's block about the reported person, its fields on lines of their own:
    /// 「被反映人：吴志强」 then 「单位及职务：…医疗保障局基金监管股 工作人员」, or
    /// 「被反映人姓名：」「被反映人单位：」「被反映人职务：」. One labelled mention of the whole
    /// block, or `None` when the label stands in running text or its line says it all.
    fn subject_block(&self, text: &str, label_start: usize, bounds: &dyn Fn(usize) -> bool) -> Option<Mention> {
        let line_start = text[..label_start].rfind('\n').map_or(0, |i| i + 1);
        if !text[line_start..label_start].trim().is_empty() {
            return None;
        }
        let (mut name, mut unit, mut post): (Option<String>, Option<String>, Option<(String, usize)>) =
            (None, None, None);
        let mut end = line_start;
        let mut lines = 0;
        for line in text[line_start..].split_inclusive('\n') {
            let at = end;
            let Some(colon) = line.find(['：', ':']) else { break };
            let field = line[..colon].trim();
            let is_subject = lines == 0 || field.starts_with('被');
            let is_field = ["单位", "职务", "职级", "姓名", "性别", "级别", "职位"].iter().any(|f| field.contains(f));
            // The reporter's own fields (反映人姓名) end the block.
            let reporter_field = !field.starts_with('被') && field.contains('人');
            if field.chars().count() > 10 || !(is_subject || is_field) || (lines > 0 && (!is_field || reporter_field)) {
                break;
            }
            let value_at =
                skip_chars(text, at + colon + line[colon..].chars().next().map_or(1, char::len_utf8), &[' ', '　']);
            let value = clause(text, value_at);
            if field.contains("单位") || field.contains("职务") || field.contains("职位") {
                let found = self.posts.find_iter(value).last().map(|p| (p.start(), p.end(), p.pattern().as_usize()));
                match found {
                    Some((ps, pe, rule)) => {
                        post = Some((value[ps..pe].to_string(), self.post_words[rule].1));
                        let u = value[..ps].trim_end_matches(['　', ' ']);
                        if u.chars().count() >= 2 {
                            unit = Some(u.to_string());
                        }
                    }
                    None if field.contains("单位") && value.chars().count() >= 2 => unit = Some(value.to_string()),
                    None => {}
                }
            } else if (field.contains("姓名") || lines == 0) && name.is_none() {
                name = self.name_after(text, value_at, bounds).map(|n| n.0);
            }
            end = at + line.len();
            lines += 1;
        }
        if lines < 2 || (unit.is_none() && post.is_none()) {
            return None;
        }
        let rank = match &post {
            Some((_, rule)) => self.rank(*rule, unit.as_deref()),
            None => self.general_rank(unit.as_deref()),
        };
        Some(Mention {
            name,
            unit,
            post: post.map(|p| p.0),
            rank: Some(rank),
            role: Role::Official,
            start: label_start,
            end,
            labelled: true,
            self_ref: false,
        })
    }

    /// The unit a post belongs to and the post as written. A post word that begins with a
    /// level (镇党委书记, 县委书记) takes the place before it as its unit (石桥 + 镇).
    fn unit_and_post(&self, text: &str, start: usize, word: &str) -> (Option<String>, String) {
        let first = word.chars().next().unwrap_or(' ');
        if "镇乡县市村省区".contains(first) && word.chars().count() > 2 {
            let run = back_run(text, start);
            if !run.is_empty() {
                let unit = format!("{run}{first}");
                let post = if matches!(first, '镇' | '乡' | '村') {
                    word[first.len_utf8()..].to_string()
                } else {
                    word.to_string()
                };
                return (Some(unit), post);
            }
        }
        (self.unit_before(text, start), word.to_string())
    }

    /// The unit written right before `end` (「青岚县民政局」 before 局长), if the text there
    /// ends with a unit suffix.
    fn unit_before(&self, text: &str, end: usize) -> Option<String> {
        let head = text[..end].strip_suffix('的').unwrap_or(&text[..end]);
        let run = back_run(text, head.len());
        if self.unit_suffixes.iter().any(|s| run.ends_with(s.as_str())) && run.chars().count() >= 2 {
            return Some(run.to_string());
        }
        // 「临川市交通运输局分管公路建设的副局长」: the nearest unit earlier in the clause.
        let clause_start = text[..head.len()]
            .char_indices()
            .rev()
            .find(|(_, c)| matches!(c, '，' | '。' | '；' | '\n' | '：' | '、' | ','))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let clause = &text[clause_start..head.len()];
        let mut best: Option<usize> = None;
        for suffix in
            ["局", "委员会", "办公室", "所", "院", "站", "中心", "公司", "大队", "政府", "镇", "乡", "村", "社区"]
        {
            if let Some(i) = clause.rfind(suffix) {
                let end = i + suffix.len();
                if end < clause.len() && best.is_none_or(|b| end > b) {
                    best = Some(end);
                }
            }
        }
        let end = clause_start + best?;
        let unit = back_run(text, end);
        (unit.chars().count() >= 3 && clause.len() - (end - clause_start) <= 30).then(|| unit.to_string())
    }

    fn rank(&self, rule: usize, unit: Option<&str>) -> String {
        let r = &self.post_rules[rule];
        unit.and_then(admin_level).and_then(|lvl| r.by_unit.get(lvl).cloned()).unwrap_or_else(|| r.rank.clone())
    }

    fn general_rank(&self, unit: Option<&str>) -> String {
        let rule = self.post_words.iter().find(|(w, _)| w == "工作人员").map(|(_, i)| *i);
        match rule {
            Some(i) => self.rank(i, unit),
            None => "一般干部".into(),
        }
    }

    /// A person's name starting at `at`: a surname and one or two given characters, or a
    /// partial form (孙某某, 刘某, 王XX). Returns the name and its end.
    fn name_after(&self, text: &str, at: usize, bounds: &dyn Fn(usize) -> bool) -> Option<(String, usize)> {
        let rest = text.get(at..)?;
        let rest = rest.strip_prefix("同志").unwrap_or(rest);
        let at = text.len() - rest.len();
        let surname_len = COMPOUND_SURNAMES
            .iter()
            .find(|s| rest.starts_with(*s))
            .map(|s| s.len())
            .or_else(|| rest.chars().next().filter(|c| self.surnames.contains(c)).map(char::len_utf8))?;
        let after = &rest[surname_len..];
        for partial in ["某某", "某", "XX", "xx", "××", "×"] {
            if after.starts_with(partial) {
                let end = at + surname_len + partial.len();
                return Some((format!("{}{}", &rest[..surname_len], partial.replace(['X', 'x', '×'], "某")), end));
            }
        }
        // 「李主任」: the surname and a post, not a given name.
        if self.posts.find(after).is_some_and(|m| m.start() == 0) {
            return None;
        }
        // A nickname by seniority: 冯老四, 李老二.
        let mut nick = after.chars();
        if let (Some('老'), Some(c)) = (nick.next(), nick.next()) {
            if "大二三四五六七八九十幺".contains(c) {
                let end = at + surname_len + '老'.len_utf8() + c.len_utf8();
                return Some((text[at..end].to_string(), end));
            }
        }
        if !bounds(at) {
            return None;
        }
        let given: Vec<char> = after.chars().take(2).collect();
        for n in (1..=given.len()).rev() {
            let g = &given[..n];
            // 有 and 家 begin given names (杨有福, 文家强) but never end one (张三有个弟弟, 王家).
            let opens = |i: usize, c: char| i == 0 && n == 2 && (c == '有' || c == '家');
            let stops = |(i, c): (usize, &char)| (NAME_STOP.contains(*c) && !opens(i, *c)) || !is_han(*c);
            if g.iter().enumerate().any(stops) {
                continue;
            }
            let end = at + surname_len + g.iter().map(|c| c.len_utf8()).sum::<usize>();
            let next = text[end..].chars().next();
            if next.is_some_and(|c| PLACE_AFTER.contains(c)) {
                continue;
            }
            // jieba's cut of unknown names is unreliable (刘长/根是): a name also ends where a
            // character that cannot continue it follows.
            let ends_clearly = next.is_none_or(|c| !is_han(c) || NAME_STOP.contains(c));
            if (bounds(end) || ends_clearly) && !(self.is_word)(&text[at..end]) {
                return Some((text[at..end].to_string(), end));
            }
        }
        None
    }

    /// 「李主任」「王书记」: a surname right before the post, the way people address an
    /// official, is a partial name (李某), never a given name.
    fn surname_and_post(
        &self,
        text: &str,
        post_start: usize,
        bounds: &dyn Fn(usize) -> bool,
    ) -> Option<(String, usize)> {
        let surname = text[..post_start].chars().next_back().filter(|c| self.surnames.contains(c))?;
        let at = post_start - surname.len_utf8();
        let before = text[..at].chars().next_back();
        let apart =
            before.is_none_or(|c| !is_han(c) || "的个位是找跟和给说那这里村镇乡局站所院校委办队室厂司组".contains(c));
        (apart && bounds(at)).then(|| (format!("{surname}某"), post_start))
    }

    /// 「有个姓冯的副局长」: the surname, and where the words before it end (for the unit).
    fn surname_before(&self, text: &str, post_start: usize) -> Option<(String, usize)> {
        let head = text[..post_start].strip_suffix('的')?;
        let surname = head.chars().next_back().filter(|c| self.surnames.contains(c))?;
        let head = head[..head.len() - surname.len_utf8()].strip_suffix('姓')?;
        let end = strip_filler(head, &["有一个", "有一位", "有个", "有位", "那个", "一个", "一位", "里", "的"]).len();
        Some((surname.to_string(), end))
    }

    /// A name that ends exactly at `end` (「赵德明（村支书）」).
    fn name_before(&self, text: &str, end: usize, bounds: &dyn Fn(usize) -> bool) -> Option<(String, usize)> {
        let head = text.get(..end)?;
        let head_t = head.trim_end_matches(['（', '(', '，', ' ']);
        let starts: Vec<usize> = head_t.char_indices().rev().take(4).map(|(i, _)| i).collect();
        for s in starts.into_iter().rev() {
            if let Some((name, e)) = self.name_after(text, s, bounds) {
                if e == head_t.len() {
                    return Some((name, e));
                }
            }
        }
        None
    }

    fn amounts(&self, text: &str) -> Vec<Found> {
        let mut out = Vec::new();
        for c in self.amount.captures_iter(text) {
            let (Some(all), Some(n), Some(u)) = (c.get(0), c.get(1), c.get(2)) else { continue };
            if let Ok(v) = n.as_str().parse::<f64>() {
                out.push(Found {
                    value: format!("{}", (v * unit_factor(u.as_str())).round() as i64),
                    start: all.start(),
                });
            }
        }
        for c in self.amount_cn.captures_iter(text) {
            let (Some(all), Some(n), Some(u)) = (c.get(0), c.get(1), c.get(2)) else { continue };
            // 「千万不要」 is "by no means", not ten million.
            if all.as_str() == "千万" {
                continue;
            }
            if let Some(v) = chinese_number(n.as_str()) {
                out.push(Found {
                    value: format!("{}", (v as f64 * unit_factor(u.as_str())).round() as i64),
                    start: all.start(),
                });
            }
        }
        out.sort_by_key(|f| f.start);
        out
    }

    /// The reporter: labelled fields, 「我叫…」, and the signature block.
    fn reporter(&self, text: &str, signature_start: usize, bounds: &dyn Fn(usize) -> bool) -> ReporterIdentity {
        let mut id = ReporterIdentity::default();
        for m in self.name_labels.find_iter(text) {
            // 「被举报人」「被反映人」 introduce the accused, not the writer.
            if text[..m.start()].ends_with('被') {
                continue;
            }
            let at = skip_chars(text, m.end(), &['：', ':', ' ', '　']);
            if at == m.end() && !text[m.end()..].starts_with(['：', ':']) {
                continue;
            }
            let value = clause(text, at);
            if self.is_anonymous(value) {
                continue;
            }
            if let Some(name) = self.name_in(text, at, value.len(), bounds) {
                id.name = Some(name);
                break;
            }
        }
        if id.name.is_none() {
            for intro in ["我叫", "本人叫", "我的名字叫", "本人", "我是"] {
                let mut from = 0;
                while let Some(i) = text[from..].find(intro) {
                    let at = from + i + intro.len();
                    from = at;
                    if let Some((name, _)) = self.name_after(text, at, bounds).filter(|(n, _)| !n.contains('某')) {
                        id.name = Some(name);
                        break;
                    }
                }
                if id.name.is_some() {
                    break;
                }
            }
        }
        if id.name.is_none() {
            id.name = self.signature_name(text, signature_start, bounds);
        }
        let phone = self
            .phone
            .captures_iter(text)
            .filter_map(|c| c.get(1))
            .find(|m| m.start() >= signature_start || near_contact_label(text, m.start()));
        let landline = || {
            self.landline
                .captures_iter(text)
                .filter_map(|c| c.get(1))
                .find(|m| m.start() >= signature_start || near_contact_label(text, m.start()))
        };
        id.phone =
            phone.or_else(landline).map(|m| m.as_str().chars().filter(|c| c.is_ascii_digit() || *c == '-').collect());
        id.id_number =
            self.id_number.captures_iter(text).filter_map(|c| c.get(1)).next().map(|m| m.as_str().to_string());
        for m in self.address_labels.find_iter(text) {
            let at = skip_chars(text, m.end(), &['：', ':', ' ', '在']);
            let value = clause(text, at);
            if is_full_address(value) {
                id.address = Some(value.to_string());
                break;
            }
        }
        for m in self.unit_labels.find_iter(text) {
            let at = skip_chars(text, m.end(), &['：', ':', ' ']);
            if at == m.end() || self.in_subject_block(text, m.start()) {
                continue;
            }
            let value = clause(text, at);
            if value.chars().count() >= 2 {
                id.unit = Some(value.to_string());
                break;
            }
        }
        if id.unit.is_none() && signature_start < text.len() {
            let sig = &text[signature_start..];
            for line in sig.lines() {
                if let Some(c) = self.sign_unit.captures(line).and_then(|c| c.get(1)) {
                    id.unit = Some(c.as_str().to_string());
                    break;
                }
            }
        }
        id
    }

    /// Whether `pos` lies in a form's block about the reported person: a 被举报人 label
    /// stands on one of the three lines before it, and no label of the reporter since.
    fn in_subject_block(&self, text: &str, pos: usize) -> bool {
        let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
        let mut from = line_start;
        for _ in 0..4 {
            let line_end = text[from..].find('\n').map_or(text.len(), |i| from + i);
            let line = &text[from..line_end.max(from)];
            if self.subject_labels.is_match(line) {
                return true;
            }
            if self.name_labels.find_iter(line).any(|m| !line[..m.start()].ends_with('被')) && from != line_start {
                return false;
            }
            if from == 0 {
                break;
            }
            from = text[..from - 1].rfind('\n').map_or(0, |i| i + 1);
        }
        false
    }

    /// The first full name within `len` bytes from `at` (「石门村村民 邓小华」).
    fn name_in(&self, text: &str, at: usize, len: usize, bounds: &dyn Fn(usize) -> bool) -> Option<String> {
        let end = (at + len).min(text.len());
        let mut pos = at;
        while pos < end {
            if let Some((name, e)) = self.name_after(text, pos, bounds) {
                if !name.contains('某') && e <= end {
                    return Some(name);
                }
            }
            pos += text[pos..].chars().next().map_or(1, char::len_utf8);
        }
        None
    }

    /// A name in the signature block: a line, or a part of it between spaces, that is a name
    /// once the writer's role or place before it is set aside (「孟河村村民 孟庆华」,
    /// 「家长  孙红霞  手机：…」, 「城关镇 杨金凤」, 「陈永福  136…」).
    fn signature_name(&self, text: &str, signature_start: usize, bounds: &dyn Fn(usize) -> bool) -> Option<String> {
        let sig = text.get(signature_start..)?;
        for line in sig.lines() {
            let line_start = signature_start + (line.as_ptr() as usize - sig.as_ptr() as usize);
            let line_end = line_start + line.len();
            for part in line.split([' ', '　', '\t', '，', ',']) {
                let start = line_start + (part.as_ptr() as usize - line.as_ptr() as usize);
                if part.is_empty()
                    || part.starts_with(|c: char| c.is_ascii_digit())
                    || self.anonymous.iter().any(|a| a == part)
                {
                    continue;
                }
                // The writer's role or place may stand before the name: 村民, 家长, 石门村 …
                let part_end = start + part.len();
                // Normalisation joins Han characters across spaces (业主孙晓燕), so the name may
                // begin anywhere in the part: the first that ends it (or a contact follows) wins.
                let tries: Vec<usize> = text[start..part_end].char_indices().map(|(i, _)| start + i).collect();
                for at in tries {
                    let at = skip_chars(text, at, &['：', ':']);
                    let Some((name, end)) = self.name_after(text, at, bounds) else { continue };
                    let rest = text[end..line_end].trim();
                    let rest_ok = rest.is_empty()
                        || rest.starts_with(|c: char| c.is_ascii_digit() || "二〇敬叩，,（(电联手住地".contains(c));
                    if !name.contains('某') && rest_ok && end <= part_end {
                        return Some(name);
                    }
                }
            }
        }
        None
    }

    fn is_anonymous(&self, value: &str) -> bool {
        let v = value.trim();
        v.is_empty() || self.anonymous.iter().any(|a| v.starts_with(a.as_str()) || v == a)
    }
}

/// `at` moved past the first of `fillers` the text there starts with, if any.
fn skip_filler(text: &str, at: usize, fillers: &[&str]) -> usize {
    fillers.iter().find(|f| text[at..].starts_with(**f)).map_or(at, |f| at + f.len())
}

/// `head` without the first of `fillers` it ends with, if any.
fn strip_filler<'a>(head: &'a str, fillers: &[&str]) -> &'a str {
    fillers.iter().find_map(|f| head.strip_suffix(*f)).unwrap_or(head)
}

/// The run of Han characters and digits that ends at `end`, stopped by punctuation or by a
/// character that cannot be part of a unit name.
fn back_run(text: &str, end: usize) -> &str {
    let head = &text[..end];
    let mut start = end;
    for (i, c) in head.char_indices().rev() {
        if !(is_han(c) || c.is_ascii_digit()) || UNIT_STOP.contains(c) || end - i > 60 {
            break;
        }
        start = i;
    }
    &text[start..end]
}

fn unit_start(text: &str, post_start: usize, unit: Option<&str>) -> usize {
    match unit {
        Some(u) if text[..post_start].ends_with(u) => post_start - u.len(),
        Some(u) => text[..post_start].rfind(u).unwrap_or(post_start),
        None => post_start,
    }
}

/// The administrative level of a unit: the lowest level it names.
pub fn admin_level(unit: &str) -> Option<&'static str> {
    // Words that hold a level's character without naming a place: 市场监管局, 城乡建设局,
    // 乡村振兴局, 农业农村局.
    let mut u = unit.to_string();
    for word in ["市场", "城市", "城乡", "乡村", "农村", "村镇", "村级"] {
        u = u.replace(word, "");
    }
    if u.contains('村') || u.contains("社区") || u.ends_with('组') {
        Some("村")
    } else if u.contains('镇') || u.contains('乡') || u.contains("街道") {
        Some("乡")
    } else if u.contains('县') || u.contains('区') {
        Some("县")
    } else if u.contains('市') {
        Some("市")
    } else if u.contains('省') {
        Some("省")
    } else {
        None
    }
}

fn is_self_reference(text: &str, post_start: usize, unit: Option<&str>) -> bool {
    let tail = chars_before(text, unit_start(text, post_start, unit), 4);
    ["我是", "本人是", "我作为", "本人系", "我系", "我曾任", "我原是", "本人原", "我任"]
        .iter()
        .any(|p| tail.ends_with(p))
}

/// Whether the words before a post say it was held once and no longer (当过, 曾任 …).
fn is_former_post(text: &str, post_start: usize) -> bool {
    let tail = chars_before(text, post_start, 6);
    ["当过", "曾任", "曾经是", "曾是", "原任", "以前是", "退休前是", "干过"].iter().any(|p| tail.contains(p))
}

/// The last `n` characters of `text` before byte `end` (fewer at the start of the text).
fn chars_before(text: &str, end: usize, n: usize) -> &str {
    let head = &text[..end];
    let start = head.char_indices().rev().nth(n.saturating_sub(1)).map_or(0, |(i, _)| i);
    &head[start..]
}

fn skip_chars(text: &str, mut at: usize, chars: &[char]) -> usize {
    while let Some(c) = text[at..].chars().next() {
        if chars.contains(&c) {
            at += c.len_utf8();
        } else {
            break;
        }
    }
    at
}

/// Text from `at` to the end of its clause.
fn clause(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    let end = rest.find(['，', '。', '；', '\n', '、', ',', ';', '（', '(']).unwrap_or(rest.len());
    rest[..end].trim()
}

/// A full address: a village, community or street and a house or group number.
fn is_full_address(s: &str) -> bool {
    let place = ["村", "社区", "小区", "街", "路", "巷", "镇"].iter().any(|p| s.contains(p));
    let number = ["号", "组", "栋", "室", "单元", "幢", "门牌"].iter().any(|p| s.contains(p));
    place && number && s.chars().count() >= 6
}

fn near_contact_label(text: &str, pos: usize) -> bool {
    let tail = chars_before(text, pos, 8);
    ["电话", "手机", "联系方式", "联系", "Tel", "tel", "号码", "微信"].iter().any(|l| tail.contains(l))
}

/// Where the signature block begins: the short lines at the end of the letter (a name, a
/// contact, a date), at most four of them. A letter that ends in a long line (an online form
/// whose last field is the facts, a note scribbled in one paragraph) has none: its facts are
/// never taken for a signature.
fn signature_start(text: &str) -> usize {
    let lines: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .scan(0usize, |pos, l| {
            let start = *pos;
            *pos += l.len();
            Some((start, l))
        })
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut start = text.len();
    for (i, &(at, line)) in lines.iter().enumerate().rev().take(SIGNATURE_LINES) {
        // The first line (a salutation or a title) never signs, nor does a sentence.
        let line = line.trim();
        let sentence = line.ends_with(['。', '！', '？', '；', '!', '?', ';']);
        if i == 0 || sentence || line.chars().count() > SIGNATURE_LINE_CHARS {
            break;
        }
        start = at;
    }
    start
}

/// At most this many lines sign a letter.
const SIGNATURE_LINES: usize = 4;
/// A line longer than this is text, not a signature (a name with its village, role, phone
/// and address fits).
const SIGNATURE_LINE_CHARS: usize = 60;

fn copied_to(text: &str, tags: &[Tag]) -> Vec<String> {
    tags.iter()
        .filter(|t| t.is(|c| c == Category::Copied))
        .map(|t| clause(text, t.end).chars().take(30).collect::<String>())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unit_factor(u: &str) -> f64 {
    if u.starts_with('万') {
        10_000.0
    } else if u.starts_with('千') {
        1_000.0
    } else {
        1.0
    }
}

/// A Chinese numeral up to the thousands (三千五 is not handled: 三千 is).
fn chinese_number(s: &str) -> Option<i64> {
    let digit =
        |c: char| "零一二三四五六七八九".find(c).map(|i| (i / 3) as i64).or(if c == '两' { Some(2) } else { None });
    let mut total = 0i64;
    let mut current = 0i64;
    for c in s.chars() {
        match c {
            '十' => {
                total += if current == 0 { 10 } else { current * 10 };
                current = 0;
            }
            '百' => {
                total += current * 100;
                current = 0;
            }
            '千' => {
                total += current * 1000;
                current = 0;
            }
            c => current = digit(c)?,
        }
    }
    Some(total + current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::segment::Segmenter;
    use crate::stages::tag::Tagger;

    fn run(text: &str) -> Extracted {
        let cat = Catalogue::builtin().expect("rules");
        let seg = Segmenter::new(&cat.dictionary).expect("seg");
        let tagger = Tagger::new(&cat.keywords).expect("tagger");
        let words = Segmenter::new(&cat.dictionary).expect("seg");
        let ex = Extractor::new(&cat, Box::new(move |w| words.is_word(w))).expect("extractor");
        let toks = seg.segment(text);
        let tags = tagger.tag(text, &toks);
        ex.extract(text, &tags, &|p| toks.is_boundary(p))
    }

    #[test]
    fn the_accused_of_a_form_is_one_subject_and_never_the_reporter() {
        let e = run("【网络举报】\n被反映人：吴志强\n单位及职务：清河县医疗保障局基金监管股　工作人员\n反映人：（匿名）\n主要问题：\n吴志强收了诊所老板的两箱茅台。\n");
        let m = e.mentions.iter().find(|m| m.labelled).expect("the labelled subject");
        assert_eq!(m.name.as_deref(), Some("吴志强"));
        assert_eq!(m.unit.as_deref(), Some("清河县医疗保障局基金监管股"));
        assert_eq!(m.post.as_deref(), Some("工作人员"));
        assert_eq!(e.reporter.name, None, "被反映人 is not the reporter");
        let e = run("被举报人：胡某某，青山镇征地拆迁办公室副主任。\n他多领补偿款2.7万元。\n举报人：文家强（新桥村二组）\n电话：18773592064\n");
        assert_eq!(e.reporter.name.as_deref(), Some("文家强"));
    }

    #[test]
    fn a_signature_name_after_the_writers_role_or_place() {
        for (sig, name) in [
            ("业主孙晓燕 13783016629", "孙晓燕"),
            ("家长  孙红霞  手机：18237495160", "孙红霞"),
            ("孟河村村民 孟庆华", "孟庆华"),
        ] {
            let e = run(&format!("县纪委：\n物业不好，请纪委出面管一管。\n{sig}\n2024年7月3日\n"));
            assert_eq!(e.reporter.name.as_deref(), Some(name), "{sig}");
        }
        let e = run("县纪委：\n物业不好，请纪委出面管一管。\n一名家长\n联系电话：13807351264\n");
        assert_eq!(e.reporter.name, None);
    }

    #[test]
    fn the_last_long_paragraph_of_a_form_is_not_a_signature() {
        let text = "【网络举报】\n被反映人：李某某\n主要问题：\n2023年9月的工程招标，合同价2860万元，中标的是李某某妻弟的公司，三家的标书是同一个人做的，连错别字都一样，请上级纪委调查清楚。\n提交时间：2024-01-05";
        let e = run(text);
        assert!(e.signature_start > text.find("2860").expect("amount"), "{}", &text[e.signature_start..]);
    }

    #[test]
    fn nicknames_and_surname_with_post() {
        let e = run("四组组长冯老四去年每亩扣了20块。马店镇李楼村的李主任把鱼塘包给小舅子。");
        assert!(e.mentions.iter().any(|m| m.name.as_deref() == Some("冯老四")));
        assert!(e.mentions.iter().any(|m| m.name.as_deref() == Some("李某") && m.post.as_deref() == Some("主任")));
        assert!(!run("千万不要让他跑掉了").amounts.iter().any(|a| a.value == "10000000"));
    }

    #[test]
    fn finds_post_unit_name_and_rank() {
        let e = run("我要举报石桥镇柳河村党支部书记赵德明，他把低保给了亲戚。");
        let m = e.mentions.iter().find(|m| m.name.as_deref() == Some("赵德明")).expect("赵德明");
        assert_eq!(m.unit.as_deref(), Some("石桥镇柳河村"));
        assert_eq!(m.rank.as_deref(), Some("村干部"));
        assert!(m.labelled);
    }

    #[test]
    fn partial_names_and_city_bureau_ranks() {
        let e = run("临川市住建局副局长刘某收了开发商的钱。");
        let m = &e.mentions[0];
        assert_eq!(m.name.as_deref(), Some("刘某"));
        assert_eq!(m.rank.as_deref(), Some("县处级"));
    }

    #[test]
    fn reporter_needs_name_or_unit_and_contact() {
        let e = run(
            "某某事情说明。\n村主任王大军私分集体资金。\n\n\n举报人：李春生\n联系电话：139 0735 2846\n2026年3月1日",
        );
        assert_eq!(e.reporter.name.as_deref(), Some("李春生"));
        assert_eq!(e.reporter.phone.as_deref(), Some("13907352846"));
        let anon = run("村主任王大军私分集体资金。\n\n\n\n一村民\n2026年3月1日");
        assert_eq!(anon.reporter.name, None);
    }

    #[test]
    fn amounts_are_read_in_yuan() {
        let e = run("共计3.6万元，另有两千块，还有12000元。");
        let v: Vec<&str> = e.amounts.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(v, ["36000", "2000", "12000"]);
    }
}
