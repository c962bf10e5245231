//! Writes the report into the benchmarks document (`--write docs/benchmarks.md`), between its
//! two markers, so the figures there are always the command's own, dated and with the machine.

/// The two markers around a written section.
#[derive(Clone, Copy, Debug)]
pub struct Markers {
    /// Where the written section starts.
    pub start: &'static str,
    /// Where it ends.
    pub end: &'static str,
}

/// The section of the runs on the emulator.
pub const EMULATOR: Markers = Markers {
    start: "<!-- benchmark:start (written by `--write`; the next run replaces it, do not edit) -->",
    end: "<!-- benchmark:end -->",
};

/// The section of the runs on a real API server (`--api-server real`).
pub const REAL: Markers = Markers {
    start: "<!-- benchmark-real:start (written by `--api-server real --write`; the next run replaces it, do not edit) -->",
    end: "<!-- benchmark-real:end -->",
};

/// `doc` with the text between the markers replaced by `section`; an error naming the missing
/// marker when `doc` lacks one (nothing is written then).
pub fn splice(doc: &str, section: &str, markers: Markers) -> Result<String, String> {
    let Markers {
        start: start_marker,
        end: end_marker,
    } = markers;
    let start = doc
        .find(start_marker)
        .ok_or_else(|| format!("the document has no start marker `{start_marker}`"))?;
    let after_start = start + start_marker.len();
    let end = doc[after_start..]
        .find(end_marker)
        .map(|i| after_start + i)
        .ok_or_else(|| {
            format!("the document has no end marker `{end_marker}` after its start marker")
        })?;
    Ok(format!(
        "{}\n\n{}\n{}",
        &doc[..after_start],
        section.trim_end(),
        &doc[end..]
    ))
}

/// Reads `path`, splices `section` in and writes it back.
pub fn write(path: &std::path::Path, section: &str, markers: Markers) -> Result<(), String> {
    let doc = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let updated = splice(&doc, section, markers).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = EMULATOR.start;
    const END: &str = EMULATOR.end;

    #[test]
    fn the_section_between_the_markers_is_replaced_and_the_rest_kept() {
        let doc = format!("intro\n{START}\nold table\n{END}\noutro\n");
        let new = splice(&doc, "new table\n", EMULATOR).expect("spliced");
        assert_eq!(new, format!("intro\n{START}\n\nnew table\n{END}\noutro\n"));
        assert_eq!(
            splice(&new, "newer", EMULATOR).expect("again"),
            format!("intro\n{START}\n\nnewer\n{END}\noutro\n"),
            "a second run replaces the first"
        );
        // The real-apiserver section is replaced on its own; the emulator's stays.
        let both = format!("{new}{}\nold real\n{}\n", REAL.start, REAL.end);
        let real = splice(&both, "real table", REAL).expect("spliced");
        assert_eq!(
            real,
            format!("{new}{}\n\nreal table\n{}\n", REAL.start, REAL.end)
        );
    }

    #[test]
    fn a_document_without_both_markers_is_refused() {
        assert!(
            splice("no markers", "x", EMULATOR)
                .unwrap_err()
                .contains("start marker")
        );
        assert!(
            splice(&format!("{START} but no end"), "x", EMULATOR)
                .unwrap_err()
                .contains("end marker")
        );
    }
}
