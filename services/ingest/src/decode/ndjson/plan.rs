//! The columns' jsonpaths compiled into a tree of keys for the fast path: the scanner walks a
//! row once and records each value a column reads in a slot.
//!
//! A path is followed through object keys as far as it has keys; the value there is captured in a
//! slot. What is left of the path (an index, `[:]` followed by more steps) is applied to that
//! value by serde_json's own walker, so only the rare columns with such paths pay for a parse.

use std::ops::Range;

use roost_types::{Column, JsonPath, Segment};

/// The root object's node.
pub(super) const ROOT: usize = 0;

/// How a column gets its value from its slot.
#[derive(Debug, Clone)]
pub(super) enum Rest {
    /// The value in the slot.
    Whole,
    /// A trailing `[:]`: the value when it is an array, else missing.
    ArrayOnly,
    /// Further steps, applied with [`JsonPath::extract`] to the slot's value parsed by serde_json.
    Path(JsonPath),
}

/// Where one column's value comes from.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub slot: usize,
    pub rest: Rest,
}

/// A key of an object the scanner matches.
#[derive(Debug)]
pub(super) struct Child {
    key: Box<[u8]>,
    /// The key needs no escape in JSON (no quote, backslash or control character), so its JSON
    /// string is the key between quotes and can be compared byte for byte with the line.
    plain: bool,
    /// The slot that captures this key's value.
    pub slot: Option<usize>,
    /// The node matching keys inside this key's value, when it is an object.
    pub node: Option<usize>,
    /// Every slot at or below this key, cleared when the key appears (again) in a row.
    pub reset: Range<usize>,
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<Child>,
}

/// The compiled jsonpaths of a set of columns.
#[derive(Debug)]
pub(super) struct Plan {
    nodes: Vec<Node>,
    slots: usize,
    root_slot: Option<usize>,
    sources: Vec<Source>,
}

/// A key path while building: its keys and the slot at its end.
struct Building {
    keys: Vec<String>,
    slot: usize,
}

impl Plan {
    /// Compiles the value locations of `columns`, in order.
    pub(super) fn new(columns: &[&Column]) -> Plan {
        let mut captures: Vec<Building> = Vec::new();
        let mut root_slot = None;
        let mut sources = Vec::with_capacity(columns.len());
        for column in columns {
            let owned;
            let segments: &[Segment] = match &column.jsonpath {
                Some(path) => path.segments(),
                None => {
                    owned = [Segment::Key(column.name.clone())];
                    &owned
                }
            };
            let keys: Vec<String> = segments
                .iter()
                .map_while(|segment| match segment {
                    Segment::Key(key) => Some(key.clone()),
                    _ => None,
                })
                .collect();
            let rest = match &segments[keys.len()..] {
                [] => Rest::Whole,
                [Segment::All] => Rest::ArrayOnly,
                more => Rest::Path(JsonPath::new(more.to_vec())),
            };
            let slot = if keys.is_empty() {
                *root_slot.get_or_insert_with(|| {
                    captures.push(Building {
                        keys: Vec::new(),
                        slot: captures.len(),
                    });
                    captures.len() - 1
                })
            } else if let Some(found) = captures.iter().find(|c| c.keys == keys) {
                found.slot
            } else {
                captures.push(Building {
                    keys,
                    slot: captures.len(),
                });
                captures.len() - 1
            };
            sources.push(Source { slot, rest });
        }

        // The tree, with slots renumbered in depth-first order so every key's subtree is one range.
        let mut plan = Plan {
            nodes: vec![Node::default()],
            slots: 0,
            root_slot: None,
            sources,
        };
        let mut renumbered = vec![usize::MAX; captures.len()];
        if let Some(slot) = root_slot {
            renumbered[slot] = plan.slots;
            plan.root_slot = Some(plan.slots);
            plan.slots += 1;
        }
        let keyed: Vec<&Building> = captures.iter().filter(|c| !c.keys.is_empty()).collect();
        plan.add_children(ROOT, &keyed, 0, &mut renumbered);
        for source in &mut plan.sources {
            source.slot = renumbered[source.slot];
        }
        plan
    }

    /// Adds the keys at `depth` of `paths` (all sharing their first `depth` keys) under `node`.
    fn add_children(
        &mut self,
        node: usize,
        paths: &[&Building],
        depth: usize,
        renumbered: &mut [usize],
    ) {
        let mut keys: Vec<&str> = Vec::new();
        for path in paths {
            let key = path.keys[depth].as_str();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            let first_slot = self.slots;
            let under: Vec<&Building> = paths
                .iter()
                .copied()
                .filter(|p| p.keys[depth] == key)
                .collect();
            let mut slot = None;
            if let Some(ends_here) = under.iter().find(|p| p.keys.len() == depth + 1) {
                renumbered[ends_here.slot] = self.slots;
                slot = Some(self.slots);
                self.slots += 1;
            }
            let deeper: Vec<&Building> = under
                .iter()
                .copied()
                .filter(|p| p.keys.len() > depth + 1)
                .collect();
            let inner = if deeper.is_empty() {
                None
            } else {
                self.nodes.push(Node::default());
                let inner = self.nodes.len() - 1;
                self.add_children(inner, &deeper, depth + 1, renumbered);
                Some(inner)
            };
            let child = Child {
                key: key.as_bytes().into(),
                plain: !key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
                slot,
                node: inner,
                reset: first_slot..self.slots,
            };
            self.nodes[node].children.push(child);
        }
    }

    /// How many slots a row fills.
    pub(super) fn slots(&self) -> usize {
        self.slots
    }

    /// How many object nodes match keys (one hint each).
    pub(super) fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The slot holding the whole row, when a column reads `$` or starts with an index.
    pub(super) fn root_slot(&self) -> Option<usize> {
        self.root_slot
    }

    /// Where each column's value comes from, in column order.
    pub(super) fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The child of `node` expected next (after the one that matched last), when `rest` (the
    /// line from a key's opening quote) starts with its JSON string; with the length of that
    /// string. Rows of one body tend to list their keys in the same order, so this usually
    /// matches a key without scanning it.
    #[inline]
    pub(super) fn match_expected(
        &self,
        node: usize,
        rest: &[u8],
        hint: &mut usize,
    ) -> Option<(&Child, usize)> {
        let child = self.nodes[node].children.get(*hint)?;
        let key = &*child.key;
        let quoted = rest.get(1..key.len() + 2)?;
        if child.plain && quoted[key.len()] == b'"' && quoted[..key.len()] == *key {
            *hint += 1;
            Some((child, key.len() + 2))
        } else {
            None
        }
    }

    /// The child of `node` named `key`. `hint` is where to look first: just after the key that
    /// matched last, since rows of one body tend to list their keys in the same order.
    #[inline]
    pub(super) fn find(&self, node: usize, key: &[u8], hint: &mut usize) -> Option<&Child> {
        let children = &self.nodes[node].children;
        if let Some(child) = children.get(*hint)
            && *child.key == *key
        {
            *hint += 1;
            return Some(child);
        }
        let index = children.iter().position(|child| *child.key == *key)?;
        *hint = index + 1;
        Some(&children[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::parse_schema;

    fn plan(schema: &str) -> Plan {
        let columns = parse_schema(schema).unwrap();
        let refs: Vec<&Column> = columns.iter().collect();
        Plan::new(&refs)
    }

    #[test]
    fn shares_slots_and_orders_them_depth_first() {
        let plan = plan(
            "a String, b String `json:$.user.name`, c String `json:$.user`, \
             d String `json:$.user.name`, e Array(String) `json:$.tags[:]`, \
             f String `json:$.items[0].x`, g String `json:$`, h String `json:$.user.id.x`",
        );
        assert_eq!(plan.slots(), 7);
        assert_eq!(plan.root_slot(), Some(0));
        let slots: Vec<usize> = plan.sources().iter().map(|s| s.slot).collect();
        // a=1, user=2, user.name=3, user.id.x=4, tags=5, items=6, root=0.
        assert_eq!(slots, [1, 3, 2, 3, 5, 6, 0, 4]);
        assert!(matches!(plan.sources()[4].rest, Rest::ArrayOnly));
        assert!(matches!(&plan.sources()[5].rest, Rest::Path(p) if p.to_string() == "$[0].x"));
        let mut hint = 0;
        let user = plan.find(ROOT, b"user", &mut hint).unwrap();
        assert_eq!(user.slot, Some(2));
        assert_eq!(user.reset, 2..5);
        assert_eq!(hint, 2);
        assert!(plan.find(ROOT, b"nope", &mut hint).is_none());
        let mut hint = 1;
        let (child, length) = plan
            .match_expected(ROOT, b"\"user\": 1", &mut hint)
            .unwrap();
        assert_eq!((child.slot, length, hint), (Some(2), 6, 2));
        let mut hint = 1;
        assert!(
            plan.match_expected(ROOT, b"\"users\": 1", &mut hint)
                .is_none()
        );
        assert!(plan.match_expected(ROOT, b"\"use", &mut hint).is_none());
        assert_eq!(hint, 1);
        assert_eq!(plan.nodes(), 3);
    }
}
