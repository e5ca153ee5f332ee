//! What a Redis Cluster says of itself, read from `CLUSTER INFO` and `CLUSTER NODES` of one
//! node, for `outgrow check`.

/// Every key belongs to one of this many slots.
pub const SLOTS: u32 = 16_384;

/// The state of a Redis Cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterReport {
    /// `host:port` of the node asked.
    pub asked: String,
    /// `cluster_state`: `ok`, or `fail` when some slot has no reachable master (the cluster then
    /// refuses commands, unless it runs with `cluster-require-full-coverage no`).
    pub state: String,
    /// Masters known to the node, and those it does not consider failing.
    pub masters: usize,
    /// Masters without a `fail`/`fail?` flag and with a connected link.
    pub masters_reachable: usize,
    /// Replicas known, and reachable.
    pub replicas: usize,
    /// Replicas without a `fail`/`fail?` flag and with a connected link.
    pub replicas_reachable: usize,
    /// Slots served by a reachable master (of [`SLOTS`]).
    pub slots_covered: u32,
}

impl ClusterReport {
    /// The report from `node`'s answers to `CLUSTER INFO` (`info`) and `CLUSTER NODES`
    /// (`nodes`).
    pub fn parse(node: &str, info: &str, nodes: &str) -> Self {
        let state = info
            .lines()
            .find_map(|line| line.strip_prefix("cluster_state:"))
            .map_or_else(|| "unknown".to_owned(), |state| state.trim().to_owned());
        let mut report = Self {
            asked: node.to_owned(),
            state,
            masters: 0,
            masters_reachable: 0,
            replicas: 0,
            replicas_reachable: 0,
            slots_covered: 0,
        };
        // <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot>...
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                continue;
            }
            let flags: Vec<&str> = fields[2].split(',').collect();
            let has = |flag: &str| flags.contains(&flag);
            let reachable = !has("fail")
                && !has("fail?")
                && !has("noaddr")
                && !has("handshake")
                && (has("myself") || fields[7] == "connected");
            if has("master") {
                report.masters += 1;
                if reachable {
                    report.masters_reachable += 1;
                    report.slots_covered += fields[8..].iter().map(|range| slot_count(range)).sum::<u32>();
                }
            } else if has("slave") || has("replica") {
                report.replicas += 1;
                report.replicas_reachable += usize::from(reachable);
            }
        }
        report
    }

    /// Whether the cluster serves every slot.
    pub fn is_ok(&self) -> bool {
        self.state == "ok"
    }

    /// One line for `outgrow check`.
    pub fn summary(&self) -> String {
        format!(
            "cluster_state {}, {}/{} masters and {}/{} replicas reachable, {}/{SLOTS} slots covered (asked {})",
            self.state,
            self.masters_reachable,
            self.masters,
            self.replicas_reachable,
            self.replicas,
            self.slots_covered,
            self.asked
        )
    }
}

/// Slots in one `CLUSTER NODES` slot entry: `5`, `0-5460`; `[…]` entries (slots being imported
/// or migrated) are not served yet.
fn slot_count(entry: &str) -> u32 {
    if entry.starts_with('[') {
        return 0;
    }
    let parse = |text: &str| text.parse::<u32>().ok();
    match entry.split_once('-') {
        Some((from, to)) => match (parse(from), parse(to)) {
            (Some(from), Some(to)) if to >= from => to - from + 1,
            _ => 0,
        },
        None => u32::from(parse(entry).is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922 [10923->-292f]
292f 127.0.0.1:30003@40003 master,fail - 1426238316232 1426238316232 3 disconnected 10923-16383
6ec2 127.0.0.1:30004@40004 slave 07c3 0 1426238317741 1 connected
824f 127.0.0.1:30005@40005 slave,fail? 67ed 0 1426238317741 2 connected
";

    #[test]
    fn a_failed_master_and_its_slots_are_not_counted_as_reachable() {
        let report = ClusterReport::parse(
            "127.0.0.1:30001",
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\n",
            NODES,
        );
        assert_eq!(report.state, "fail");
        assert!(!report.is_ok());
        assert_eq!((report.masters_reachable, report.masters), (2, 3));
        assert_eq!((report.replicas_reachable, report.replicas), (1, 2));
        assert_eq!(report.slots_covered, 10_923);
        assert_eq!(
            report.summary(),
            "cluster_state fail, 2/3 masters and 1/2 replicas reachable, 10923/16384 slots covered (asked 127.0.0.1:30001)"
        );
    }

    #[test]
    fn a_healthy_cluster_covers_every_slot() {
        let nodes = NODES
            .replace("master,fail", "master")
            .replace("disconnected", "connected");
        let report = ClusterReport::parse("n", "cluster_state:ok\r\n", &nodes);
        assert!(report.is_ok());
        assert_eq!(report.slots_covered, SLOTS);
    }

    #[test]
    fn slot_entries_count_ranges_singles_and_skip_migrations() {
        assert_eq!(slot_count("0-5460"), 5461);
        assert_eq!(slot_count("7"), 1);
        assert_eq!(slot_count("[7->-abc]"), 0);
        assert_eq!(slot_count("9-3"), 0);
    }
}
