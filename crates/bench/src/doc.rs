//! Writes the report into the benchmarks document (`--write docs/benchmarks.md`), between its
//! two markers, so the figures there are always the command's own, dated and with the machine.

/// Where the written section starts.
pub const START: &str =
    "<!-- benchmark:start (written by `--write`; the next run replaces it, do not edit) -->";
/// Where it ends.
pub const END: &str = "<!-- benchmark:end -->";

/// `doc` with the text between the markers replaced by `section`; an error naming the missing
/// marker when `doc` lacks one (nothing is written then).
pub fn splice(doc: &str, section: &str) -> Result<String, String> {
    let start = doc
        .find(START)
        .ok_or_else(|| format!("the document has no start marker `{START}`"))?;
    let after_start = start + START.len();
    let end = doc[after_start..]
        .find(END)
        .map(|i| after_start + i)
        .ok_or_else(|| format!("the document has no end marker `{END}` after its start marker"))?;
    Ok(format!(
        "{}\n\n{}\n{}",
        &doc[..after_start],
        section.trim_end(),
        &doc[end..]
    ))
}

/// Reads `path`, splices `section` in and writes it back.
pub fn write(path: &std::path::Path, section: &str) -> Result<(), String> {
    let doc = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let updated = splice(&doc, section).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_between_the_markers_is_replaced_and_the_rest_kept() {
        let doc = format!("intro\n{START}\nold table\n{END}\noutro\n");
        let new = splice(&doc, "new table\n").expect("spliced");
        assert_eq!(new, format!("intro\n{START}\n\nnew table\n{END}\noutro\n"));
        assert_eq!(
            splice(&new, "newer").expect("again"),
            format!("intro\n{START}\n\nnewer\n{END}\noutro\n"),
            "a second run replaces the first"
        );
    }

    #[test]
    fn a_document_without_both_markers_is_refused() {
        assert!(
            splice("no markers", "x")
                .unwrap_err()
                .contains("start marker")
        );
        assert!(
            splice(&format!("{START} but no end"), "x")
                .unwrap_err()
                .contains("end marker")
        );
    }
}
