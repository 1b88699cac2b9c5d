//! Print the SecAgg+ neighbourhood size and threshold derived for several cohort sizes and
//! threat models (the table in the crate's documentation comes from this).
use fedagg_secagg::{Adversary, GraphParams, ThreatModel};

fn main() {
    let models = [
        (0.05, 0.10, Adversary::Curious),
        (0.05, 0.33, Adversary::Curious),
        (0.33, 0.05, Adversary::Curious),
        (0.05, 0.10, Adversary::SemiMalicious),
    ];
    println!("| gamma | delta | server | n=100 | n=1000 | n=10^4 | n=10^5 | n=10^6 |");
    println!("|---|---|---|---|---|---|---|---|");
    for (g, d, adv) in models {
        let tm = ThreatModel {
            corrupt_fraction: g,
            dropout_rate: d,
            adversary: adv,
            ..ThreatModel::default()
        };
        let cells: Vec<String> = [100u32, 1_000, 10_000, 100_000, 1_000_000]
            .iter()
            .map(|&n| match GraphParams::derive(n, &tm) {
                Ok(GraphParams {
                    half_degree: Some(h),
                    threshold,
                }) => format!("{}/{}", 2 * h + 1, threshold),
                Ok(GraphParams {
                    half_degree: None,
                    threshold,
                }) => format!("complete/{threshold}"),
                Err(_) => "none".into(),
            })
            .collect();
        println!("| {g} | {d} | {adv:?} | {} |", cells.join(" | "));
    }
}
