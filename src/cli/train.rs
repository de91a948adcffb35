//! `lookalike train`: learn the index's projection, one line per epoch.

use std::process::ExitCode;

use super::args::TrainArgs;

pub fn run(a: TrainArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.network.config();
    let epochs = cfg.epochs;
    let json = a.json;
    let (_, report) = lookalike::projection::train::train_index(
        &a.index,
        &a.label,
        a.include_holdout,
        &cfg,
        &mut |e| {
            if !json {
                eprintln!(
                    "epoch {:>3}/{epochs}: loss {:.4}, accuracy {:.3} ({:.1} s)",
                    e.epoch, e.loss, e.accuracy, e.seconds
                );
            }
        },
    )?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "trained on {} items ({} {} values; {} held out, {} without a usable label, \
             {} sampled out) in {:.1} s; written to {}",
            report.items,
            report.classes,
            report.label,
            report.held_out,
            report.unlabelled,
            report.sampled_out,
            report.seconds,
            report.path
        );
    }
    Ok(ExitCode::SUCCESS)
}
