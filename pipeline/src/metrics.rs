//! Character error rate, the measure of OCR quality: the edit distance between recognised
//! text and the ground truth, over the number of ground-truth characters, both compared
//! after NFKC and without whitespace.

use crate::stages::normalize::for_comparison;

/// Levenshtein distance between two character sequences (two rows of memory).
pub fn edit_distance(a: &[char], b: &[char]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Errors and ground-truth length of one page, to be summed over a set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CerCount {
    pub errors: usize,
    pub truth_chars: usize,
}

impl CerCount {
    /// Compares recognised text with the ground truth.
    pub fn of(recognised: &str, truth: &str) -> CerCount {
        let (r, t) = (for_comparison(recognised), for_comparison(truth));
        CerCount { errors: edit_distance(&r, &t), truth_chars: t.len() }
    }

    /// The rate; `None` for a page without ground-truth text.
    pub fn rate(&self) -> Option<f64> {
        (self.truth_chars > 0).then(|| self.errors as f64 / self.truth_chars as f64)
    }

    pub fn add(&mut self, other: CerCount) {
        self.errors += other.errors;
        self.truth_chars += other.truth_chars;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&c("举报信"), &c("举报信")), 0);
        assert_eq!(edit_distance(&c("举极信"), &c("举报信")), 1);
        assert_eq!(edit_distance(&c(""), &c("举报")), 2);
        assert_eq!(edit_distance(&c("举报信件"), &c("报信")), 2);
    }

    #[test]
    fn cer_ignores_spaces_and_width() {
        let c = CerCount::of("关 于 ２０２４ 年", "关于2024年");
        assert_eq!(c.errors, 0);
        assert_eq!(c.rate(), Some(0.0));
        assert_eq!(CerCount::of("x", "").rate(), None);
    }
}
