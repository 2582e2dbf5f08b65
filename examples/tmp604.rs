use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
fn main() {
    let base = std::fs::read_to_string("/tmp/s604/base.toml").unwrap();
    let mut hits = 0;
    let mut tries = 0;
    for start in [0u64, 500, 1000, 1500] {
        for off in (20..120u64).step_by(2) {
            for dur in [6700u64, 6800, 6900, 7000] {
                let text = base
                    .replace("START2", &(start + 1000).to_string())
                    .replace("START", &start.to_string())
                    .replace("AT", &(start + off).to_string())
                    .replace("DUR", &dur.to_string());
                let on = Scenario::from_toml(&text).unwrap();
                let mut off_s = on.clone();
                off_s.zk.curator_604 = false;
                for seed in 0..2u64 {
                    tries += 1;
                    let a = fencelab::world::Builder::new(on.clone())
                        .fencing(Fencing::None)
                        .run_seed(seed);
                    if a.verdict.violates() {
                        let b = fencelab::world::Builder::new(off_s.clone())
                            .fencing(Fencing::None)
                            .run_seed(seed);
                        if !b.verdict.violates() {
                            hits += 1;
                            println!("start {start} at +{off} dur {dur} seed {seed}: 604 on violates, off not");
                        }
                    }
                }
            }
        }
    }
    println!("{hits} of {tries}");
}
