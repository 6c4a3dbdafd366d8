//! `/proc/<pid>/numa_maps`: resident memory per node.

/// KiB per node id, summed over every mapping (`N<id>=<pages>` times `kernelpagesize_kB`).
pub fn parse(text: &str) -> Vec<u64> {
    let mut kib: Vec<u64> = Vec::new();
    for line in text.lines() {
        let mut page_kib = 4;
        let mut counts: Vec<(usize, u64)> = Vec::new();
        for tok in line.split_ascii_whitespace().skip(1) {
            if let Some(v) = tok.strip_prefix("kernelpagesize_kB=") {
                page_kib = v.parse().unwrap_or(4);
            } else if let Some(rest) = tok.strip_prefix('N') {
                if let Some((node, pages)) = rest.split_once('=') {
                    if let (Ok(node), Ok(pages)) = (node.parse::<usize>(), pages.parse::<u64>()) {
                        counts.push((node, pages));
                    }
                }
            }
        }
        for (node, pages) in counts {
            if kib.len() <= node {
                kib.resize(node + 1, 0);
            }
            kib[node] += pages * page_kib;
        }
    }
    kib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_pages_per_node_with_page_sizes() {
        let text = "\
55bba161a000 default file=/usr/bin/head mapped=2 mapmax=2 N0=2 kernelpagesize_kB=4
7f0000000000 default anon=300 dirty=300 N0=100 N1=200 kernelpagesize_kB=4
7f1000000000 bind:1 huge anon=2 dirty=2 N1=2 kernelpagesize_kB=2048
7f2000000000 default
";
        assert_eq!(parse(text), vec![(2 + 100) * 4, 200 * 4 + 2 * 2048]);
        assert!(parse("").is_empty());
    }
}
