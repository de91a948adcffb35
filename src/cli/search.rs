//! `lookalike search`: photos (files or URLs), an indexed item, or liked and disliked
//! examples in; results out, one answer per query.

use std::path::Path;
use std::process::ExitCode;

use lookalike::engine::{Example, Query};
use lookalike::fetch::{FetchOptions, Fetcher, is_url};

use super::args::SearchArgs;
use super::tables::{print_answer, print_look};

pub fn run(a: SearchArgs) -> anyhow::Result<ExitCode> {
    use lookalike::engine::Residency;
    // `--exact` compares with every item: a collection's are then loaded, as its own
    // search may be approximate.
    let residency =
        if a.ranking.mode.exact { Residency::Snapshot } else { Residency::InStoreWherePossible };
    let engine = a.backend.open_held(&a.index, Default::default(), residency)?;
    // Before the first photo, so that a store that cannot be counted is an error here.
    engine.warm()?;
    let query = Query {
        crop: a.crop,
        resize: a.query_resize,
        min_score: a.min_score,
        collapse: a.collapse,
        ..a.ranking.query(a.k, engine.filter(&a.filters)?)
    };
    let recommending = !a.like.is_empty() || !a.unlike.is_empty();
    if a.images.is_empty() && a.similar_to.is_none() && !recommending {
        anyhow::bail!(lookalike::Error::BadParameter {
            name: "images",
            message: "give at least one photo, --similar-to ID, or --like".into()
        });
    }
    let fetcher = Fetcher::new(FetchOptions { allow: a.fetch_allow.clone(), ..Default::default() })
        .map_err(lookalike::Error::from)?;
    let photo = |path: &Path| -> anyhow::Result<Vec<u8>> {
        let text = path.to_string_lossy();
        if is_url(&text) {
            return Ok(fetcher.fetch_blocking(&text).map_err(lookalike::Error::from)?);
        }
        Ok(lookalike::catalog::read_photo(path).map_err(|source| lookalike::Error::Unreadable {
            what: "the query photo",
            path: path.to_path_buf(),
            source,
        })?)
    };
    if recommending {
        // An item's id first (ids may look like file names), else a URL or a photo file.
        let example = |text: &str| -> anyhow::Result<Example> {
            if engine.contains(text)? {
                return Ok(Example::Item(text.to_string()));
            }
            if !is_url(text) && !Path::new(text).is_file() {
                anyhow::bail!(lookalike::Error::UnknownId(text.to_string()));
            }
            let bytes = photo(Path::new(text))?;
            let (e, _) = engine.embed_photo(&bytes, &query)?;
            Ok(Example::Vector(engine.compared_vector(&e, &query)?))
        };
        // The photos given, and --similar-to's item, are liked too.
        let images = a.images.iter().map(|p| p.to_string_lossy().into_owned());
        let like = a
            .like
            .iter()
            .cloned()
            .chain(a.similar_to.clone())
            .chain(images)
            .map(|t| example(&t))
            .collect::<Result<Vec<_>, _>>()?;
        let unlike = a.unlike.iter().map(|t| example(t)).collect::<Result<Vec<_>, _>>()?;
        let answer = engine.recommend(&like, &unlike, &query)?;
        print_answer("recommendation", &answer, false, a.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = a.similar_to {
        let answer = engine.similar_answer(&id, &query)?;
        print_answer(&id, &answer, false, a.json)?;
    }
    let mut failed = false;
    for path in &a.images {
        let shown = path.display().to_string();
        let result = photo(path).and_then(|b| {
            if a.all_garments {
                return print_look(&shown, &engine.search_look(&b, &query)?, a.json);
            }
            print_answer(&shown, &engine.search_photo(&b, &query)?, true, a.json)
        });
        match result {
            Ok(()) => {}
            Err(e) if a.images.len() > 1 => {
                // One bad photo among many must not hide the others' results.
                failed = true;
                let why = super::message(&e);
                eprintln!("error: {}: {why}", path.display());
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"query": path.display().to_string(), "error": why})
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
