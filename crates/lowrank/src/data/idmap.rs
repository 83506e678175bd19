//! External ids to dense indices and back.

use std::collections::HashMap as StdHashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): one multiply per word. Ids are not
/// attacker-controlled in a batch tool, so a fast non-keyed hash is fine, and
/// it halves the time of reading a large ratings file.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap())); // ok: chunks_exact yields full chunks
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(b) ^ (rest.len() as u64) << 56);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(FX_SEED);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<FxHasher>>;

use serde::{Deserialize, Serialize};

/// Maps the ids found in a file (integers or arbitrary strings) to dense
/// indices `0..len` and back.
///
/// Integer ids are kept as integers (fast path, and sorted numerically by
/// [`IdMap::sorted`]); the first id that is not a plain non-negative integer
/// that fits in `u64` (a name, a leading zero, a sign, or an id that overflows
/// `u64`) turns the map into a string map, and every id is kept verbatim.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IdMap {
    ids: Ids,
    #[serde(skip)]
    index: Index,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
enum Ids {
    Int(Vec<u64>),
    Str(Vec<String>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Int(Vec::new())
    }
}

/// Two maps are equal when they hold the same ids in the same order (the
/// lookup table is a cache).
impl PartialEq for IdMap {
    fn eq(&self, other: &Self) -> bool {
        self.ids == other.ids
    }
}

#[derive(Clone, Debug, Default)]
enum Index {
    #[default]
    Stale,
    /// Integer ids `base..base + len`, in order: no table needed (a Matrix
    /// Market file may declare far more rows than it has entries).
    Range(u64),
    Int(HashMap<u64, u32>),
    Str(HashMap<String, u32>),
}

/// Parse an id as a canonical non-negative integer: digits only, no leading
/// zero (unless it is "0"), fits in u64. Anything else is a string id.
fn canonical_int(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        IdMap { ids: Ids::Int(Vec::new()), index: Index::Int(HashMap::default()) }
    }

    /// The identity map `0..n` (ids are the indices themselves).
    pub fn identity(n: usize) -> Self {
        IdMap::offset(n, 0)
    }

    /// Identity map with ids `base..base + n` (1-based files use `base = 1`).
    pub fn offset(n: usize, base: u64) -> Self {
        IdMap { ids: Ids::Int((base..base + n as u64).collect()), index: Index::Range(base) }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        match &self.ids {
            Ids::Int(v) => v.len(),
            Ids::Str(v) => v.len(),
        }
    }

    /// True when no id has been added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every id is an integer.
    pub fn is_integer(&self) -> bool {
        matches!(self.ids, Ids::Int(_))
    }

    fn ensure_index(&mut self) {
        if matches!(self.index, Index::Stale) {
            self.index = match &self.ids {
                Ids::Int(v) => Index::Int(v.iter().enumerate().map(|(i, &x)| (x, i as u32)).collect()),
                Ids::Str(v) => Index::Str(v.iter().enumerate().map(|(i, x)| (x.clone(), i as u32)).collect()),
            };
        }
    }

    fn stringify(&mut self) {
        if let Ids::Int(v) = &self.ids {
            let s: Vec<String> = v.iter().map(u64::to_string).collect();
            self.ids = Ids::Str(s);
            self.index = Index::Stale;
            self.ensure_index();
        }
    }

    /// Index of integer id `id`, inserting it if new.
    pub fn get_or_insert_int(&mut self, id: u64) -> u32 {
        if let (Ids::Int(v), Index::Range(base)) = (&self.ids, &self.index) {
            match id.checked_sub(*base) {
                Some(k) if (k as usize) < v.len() => return k as u32,
                _ => self.index = Index::Stale,
            }
        }
        self.ensure_index();
        match (&mut self.ids, &mut self.index) {
            (Ids::Int(v), Index::Int(h)) => *h.entry(id).or_insert_with(|| {
                v.push(id);
                (v.len() - 1) as u32
            }),
            _ => self.get_or_insert_str_raw(&id.to_string()),
        }
    }

    fn get_or_insert_str_raw(&mut self, id: &str) -> u32 {
        self.stringify();
        match (&mut self.ids, &mut self.index) {
            (Ids::Str(v), Index::Str(h)) => {
                if let Some(&i) = h.get(id) {
                    return i;
                }
                v.push(id.to_string());
                let i = (v.len() - 1) as u32;
                h.insert(id.to_string(), i);
                i
            }
            _ => unreachable!("to_strings leaves a string map"),
        }
    }

    /// Index of id `id` (as text), inserting it if new.
    pub fn get_or_insert(&mut self, id: &str) -> u32 {
        match canonical_int(id) {
            Some(x) if self.is_integer() => self.get_or_insert_int(x),
            _ => self.get_or_insert_str_raw(id),
        }
    }

    /// Index of an existing id, if present.
    pub fn get(&self, id: &str) -> Option<u32> {
        match (&self.ids, &self.index) {
            (Ids::Int(_), Index::Int(h)) => canonical_int(id).and_then(|x| h.get(&x).copied()),
            (Ids::Int(v), Index::Range(base)) => canonical_int(id)
                .and_then(|x| x.checked_sub(*base))
                .filter(|&k| (k as usize) < v.len())
                .map(|k| k as u32),
            (Ids::Str(_), Index::Str(h)) => h.get(id).copied(),
            (Ids::Int(v), Index::Stale) => {
                let x = canonical_int(id)?;
                v.iter().position(|&y| y == x).map(|i| i as u32)
            }
            (Ids::Str(v), _) => v.iter().position(|y| y == id).map(|i| i as u32),
            (Ids::Int(_), Index::Str(_)) => None,
        }
    }

    /// Index of an existing id; builds the lookup table if needed.
    pub fn lookup(&mut self, id: &str) -> Option<u32> {
        self.ensure_index();
        self.get(id)
    }

    /// The external id of index `i`, as text.
    pub fn id(&self, i: usize) -> String {
        match &self.ids {
            Ids::Int(v) => v[i].to_string(),
            Ids::Str(v) => v[i].clone(),
        }
    }

    /// All external ids, in index order, as text.
    pub fn ids(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.id(i)).collect()
    }

    /// Sort integer ids numerically; returns `perm` with `perm[old] = new`.
    /// String maps keep their order of first appearance (returns the identity).
    pub fn sorted(&mut self) -> Vec<u32> {
        match &mut self.ids {
            Ids::Int(v) => {
                let mut order: Vec<u32> = (0..v.len() as u32).collect();
                order.sort_unstable_by_key(|&i| v[i as usize]);
                let mut perm = vec![0u32; v.len()];
                for (new, &old) in order.iter().enumerate() {
                    perm[old as usize] = new as u32;
                }
                let sorted: Vec<u64> = order.iter().map(|&i| v[i as usize]).collect();
                *v = sorted;
                self.index = Index::Stale;
                self.ensure_index();
                perm
            }
            Ids::Str(v) => (0..v.len() as u32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_then_strings() {
        let mut m = IdMap::new();
        assert_eq!(m.get_or_insert("10"), 0);
        assert_eq!(m.get_or_insert("3"), 1);
        assert_eq!(m.get_or_insert("10"), 0);
        assert!(m.is_integer());
        assert_eq!(m.get_or_insert("alice"), 2);
        assert!(!m.is_integer());
        assert_eq!(m.get("10"), Some(0));
        assert_eq!(m.id(2), "alice");
        // leading zero and overflow stay strings, verbatim
        assert_eq!(m.get_or_insert("007"), 3);
        assert_eq!(m.get_or_insert("99999999999999999999999"), 4);
        assert_eq!(m.id(4), "99999999999999999999999");
    }

    #[test]
    fn sort_integer_ids() {
        let mut m = IdMap::new();
        for id in ["30", "10", "20"] {
            m.get_or_insert(id);
        }
        let perm = m.sorted();
        assert_eq!(perm, vec![2, 0, 1]);
        assert_eq!(m.ids(), vec!["10", "20", "30"]);
        assert_eq!(m.get("30"), Some(2));
    }

    #[test]
    fn ranges_need_no_table_until_they_grow() {
        let mut m = IdMap::offset(1_000_000, 1);
        assert_eq!((m.get("1"), m.get("1000000"), m.get("0"), m.get("1000001")), (Some(0), Some(999_999), None, None));
        assert_eq!(m.get_or_insert("500"), 499);
        let mut small = IdMap::offset(3, 1);
        assert_eq!(small.get_or_insert("7"), 3);
        assert_eq!(small.get_or_insert("2"), 1);
        assert_eq!(small.get("7"), Some(3));
        assert_eq!(small.ids(), vec!["1", "2", "3", "7"]);
        let mut built = IdMap::new();
        for id in ["0", "1", "2"] {
            built.get_or_insert(id);
        }
        assert_eq!(built, IdMap::identity(3));
        m.get_or_insert("x");
        assert_eq!(m.get("x"), Some(1_000_000));
    }

    #[test]
    fn overflowing_id_is_string() {
        let mut m = IdMap::new();
        m.get_or_insert("18446744073709551616");
        assert!(!m.is_integer());
        assert_eq!(m.id(0), "18446744073709551616");
    }
}
