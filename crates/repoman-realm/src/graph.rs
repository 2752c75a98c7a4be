//! The realm dependency graph and cycle detection.
//!
//! Nodes are repos. A domain created with `--repos a,b,c` adds provider → consumer edges
//! `a → b` and `a → c` (a domain of three repos is a hyperedge, modelled as a star from its
//! provider); a binding adds exporter → importer edges labelled with the contract. A cycle makes
//! the order of coordinated changes undefined, so creating a domain or binding that closes one is
//! refused, naming the whole cycle: `a → (s3-access) → b → (feedback-loop) → a`.
//!
//! Strongly connected components come from petgraph's `tarjan_scc`; inside a component the
//! reported cycle is the shortest one through the new edge (or through the component's first
//! node when checking a whole realm).

use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, VecDeque};

/// One dependency: `from` must change before `to` can follow, because of `label`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// The domain or contract that creates the dependency.
    pub label: String,
}

/// A cycle as an ordered list of steps `(repo, label to the next repo)`; the last step leads back
/// to the first repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub steps: Vec<(String, String)>,
}

impl Cycle {
    /// `a → (s3-access) → b → (feedback-loop) → a`
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (repo, label) in &self.steps {
            s.push_str(&format!("{repo} → ({label}) → "));
        }
        if let Some((first, _)) = self.steps.first() {
            s.push_str(first);
        }
        s
    }
}

/// What the seed suggests when a cycle is refused.
pub const CYCLE_SUGGESTIONS: [&str; 3] = [
    "merge the related domains into a single coordination context",
    "reverse a dependency direction",
    "use a hub-and-spoke pattern (one provider repo that the others depend on)",
];

/// Adding something would close a cycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adding {what} creates a cycle:\n  {}\nConsider:\n{}", cycle.render(), CYCLE_SUGGESTIONS.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
pub struct CycleError {
    pub what: String,
    pub cycle: Cycle,
}

/// The graph of repos and their dependencies.
#[derive(Clone, Debug, Default)]
pub struct DependencyGraph {
    pub edges: Vec<Edge>,
}

/// The edges a domain adds: its first repo provides, the others consume.
pub fn domain_edges(domain: &str, repos: &[String]) -> Vec<Edge> {
    let Some((provider, consumers)) = repos.split_first() else {
        return Vec::new();
    };
    consumers
        .iter()
        .map(|c| Edge {
            from: provider.clone(),
            to: c.clone(),
            label: domain.to_string(),
        })
        .collect()
}

impl DependencyGraph {
    fn build(&self) -> (DiGraph<String, String>, BTreeMap<String, NodeIndex>) {
        let mut g = DiGraph::new();
        let mut idx = BTreeMap::new();
        for e in &self.edges {
            for n in [&e.from, &e.to] {
                if !idx.contains_key(n) {
                    let i = g.add_node(n.clone());
                    idx.insert(n.clone(), i);
                }
            }
            g.add_edge(idx[&e.from], idx[&e.to], e.label.clone());
        }
        (g, idx)
    }

    /// Shortest path of edges from `from` to `to` (BFS), as steps.
    fn path(&self, from: &str, to: &str) -> Option<Vec<(String, String)>> {
        let mut prev: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = vec![from];
        while let Some(n) = queue.pop_front() {
            if n == to && n != from {
                break;
            }
            for e in self.edges.iter().filter(|e| e.from == n) {
                if !seen.contains(&e.to.as_str()) {
                    seen.push(&e.to);
                    prev.insert(&e.to, (n, &e.label));
                    queue.push_back(&e.to);
                }
            }
        }
        if from == to {
            return Some(Vec::new());
        }
        prev.get(to)?;
        let mut steps = Vec::new();
        let mut cur = to;
        while cur != from {
            let (p, label) = prev[cur];
            steps.push((p.to_string(), label.to_string()));
            cur = p;
        }
        steps.reverse();
        Some(steps)
    }

    /// Would adding `new` close a cycle? Returns the cycle through the first new edge that does.
    pub fn check_addition(&self, what: &str, new: &[Edge]) -> Result<(), CycleError> {
        let mut g = self.clone();
        for e in new {
            g.edges.push(e.clone());
            if let Some(mut steps) = g.path(&e.to, &e.from) {
                // `steps` leads from the new edge's target back to its source; the new edge closes it.
                steps.push((e.from.clone(), e.label.clone()));
                return Err(CycleError {
                    what: what.to_string(),
                    cycle: Cycle { steps },
                });
            }
        }
        Ok(())
    }

    /// Every cycle in the graph, one per strongly connected component (and one per self-loop).
    pub fn cycles(&self) -> Vec<Cycle> {
        let (g, _) = self.build();
        let mut out = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&g) {
            let first = &g[scc[0]];
            if scc.len() > 1 {
                // The shortest cycle through the component's first node: leave by an edge inside
                // the component, come back by the shortest path.
                let inside: Vec<&String> = scc.iter().map(|i| &g[*i]).collect();
                let best = self
                    .edges
                    .iter()
                    .filter(|e| &e.from == first && inside.contains(&&e.to))
                    .filter_map(|e| {
                        let mut back = self.path(&e.to, first)?;
                        back.insert(0, (first.clone(), e.label.clone()));
                        Some(back)
                    })
                    .min_by_key(Vec::len);
                if let Some(steps) = best {
                    out.push(Cycle { steps });
                }
            } else if let Some(e) = self
                .edges
                .iter()
                .find(|e| &e.from == first && &e.to == first)
            {
                out.push(Cycle {
                    steps: vec![(first.clone(), e.label.clone())],
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn two_cycle_is_refused_with_the_seed_message() {
        let g = DependencyGraph {
            edges: domain_edges("s3-access", &repos("a,b")),
        };
        let err = g
            .check_addition(
                "domain `feedback-loop`",
                &domain_edges("feedback-loop", &repos("b,a")),
            )
            .expect_err("cycle");
        assert_eq!(
            err.cycle.render(),
            "a → (s3-access) → b → (feedback-loop) → a"
        );
        let text = err.to_string();
        assert!(text.starts_with("adding domain `feedback-loop` creates a cycle:\n  a → (s3-access) → b → (feedback-loop) → a\nConsider:"), "{text}");
        assert!(text.contains("hub-and-spoke"));
    }

    #[test]
    fn three_cycle_names_every_step() {
        let mut g = DependencyGraph::default();
        g.edges.extend(domain_edges("d1", &repos("a,b")));
        g.edges.extend(domain_edges("d2", &repos("b,c")));
        let err = g
            .check_addition("domain `d3`", &domain_edges("d3", &repos("c,a")))
            .expect_err("cycle");
        assert_eq!(err.cycle.render(), "a → (d1) → b → (d2) → c → (d3) → a");
        g.edges.extend(domain_edges("d3", &repos("c,a")));
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].steps.len(), 3);
    }

    #[test]
    fn self_loops_are_cycles() {
        let g = DependencyGraph::default();
        let err = g
            .check_addition(
                "binding",
                &[Edge {
                    from: "a".into(),
                    to: "a".into(),
                    label: "c".into(),
                }],
            )
            .expect_err("loop");
        assert_eq!(err.cycle.render(), "a → (c) → a");
        let g = DependencyGraph {
            edges: vec![Edge {
                from: "a".into(),
                to: "a".into(),
                label: "c".into(),
            }],
        };
        assert_eq!(g.cycles().len(), 1);
    }

    #[test]
    fn hyperedges_are_stars_from_the_provider_and_acyclic_ones_pass() {
        let edges = domain_edges("shared", &repos("p,c1,c2"));
        assert_eq!(edges.len(), 2);
        assert!(edges.iter().all(|e| e.from == "p"));
        let g = DependencyGraph { edges };
        // Another domain among the consumers is fine ...
        g.check_addition("domain `x`", &domain_edges("x", &repos("c1,c2")))
            .expect("acyclic");
        // ... one that makes a consumer provide to the provider is not.
        let err = g
            .check_addition("domain `y`", &domain_edges("y", &repos("c2,p")))
            .expect_err("cycle");
        assert_eq!(err.cycle.render(), "p → (shared) → c2 → (y) → p");
        assert!(g.cycles().is_empty());
    }
}
