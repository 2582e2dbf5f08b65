//! The `fencelab` command.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fencelab",
    version,
    about = "Deterministic simulation of lease-based locking and fencing tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tell the seed's walkthrough (and its stalled variant) under every fencing policy.
    Demo {
        /// Seed of the simulated world.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Demo { seed } => demo(seed),
    };
    std::process::exit(code);
}

#[cfg(madsim)]
fn demo(seed: u64) -> i32 {
    use fencelab::{report, storage::Fencing, stories, world};
    for (title, (scenario, plan)) in [
        ("the seed's walkthrough", stories::seed_walkthrough()),
        (
            "client 2 stalls before writing",
            stories::seed_walkthrough_stalled(),
        ),
    ] {
        for fencing in Fencing::ALL {
            let run = world::run(&scenario, &plan, fencing, seed);
            println!("{}", report::run_report(title, &run));
        }
    }
    0
}

#[cfg(not(madsim))]
fn demo(_seed: u64) -> i32 {
    eprintln!("error: `demo` runs the simulation; build without RUSTFLAGS (the default .cargo/config.toml sets --cfg madsim)");
    2
}
