//! The linker script that lays out the functions of `link-order.txt` first (used by build.rs,
//! unit-tested with the client's library).

/// A partial script (it adds to the linker's own layout): an output section before `.text`
/// holding the listed functions. First the names as listed: with the Rust release and the
/// dependencies the list was made with, exactly the functions that ran. Then the same without
/// their hash: with another release, or for the generic functions' other instances (which differ
/// only by their hash), close behind.
pub fn linker_script(list: &str) -> String {
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut script = String::from("SECTIONS {\n  .text.charla_start : {\n");
    for name in &names {
        // Also with the number LLVM appends to a function it made local (".8668").
        script += &format!("    *(.text.{name} .text.{name}.*)\n");
    }
    for name in names.iter().filter_map(|name| without_hash(name)) {
        script += &format!("    *(.text.{name})\n");
    }
    script += "  }\n}\nINSERT BEFORE .text;\n";
    script
}

/// A legacy-mangled name's hash (`17h` and 16 hex digits before the final `E`) as a wildcard;
/// None for names mangled otherwise (v0, the standard library's), which keep it.
fn without_hash(name: &str) -> Option<String> {
    // Mangled names are ASCII; a line edited by hand may not be (no slicing inside a character).
    if !name.is_ascii() {
        return None;
    }
    let hash = name.len().checked_sub(20).map(|start| &name[start..])?;
    let hashed = name.starts_with("_ZN")
        && hash.starts_with("17h")
        && hash.ends_with('E')
        && hash[3..19].bytes().all(|b| b.is_ascii_hexdigit());
    hashed.then(|| format!("{}*", &name[..name.len() - 17]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_come_first_then_the_same_without_their_hash() {
        let list = "# made by scripts/order-client-code.sh\n\
                    _ZN6charla3net6Worker3run17h0123456789abcdefE\n\
                    \n\
                    _RNvNtCsgEmfK2I1SDS_4core3fmt5write\n\
                    main\n";
        let script = linker_script(list);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            [
                "SECTIONS {",
                "  .text.charla_start : {",
                "    *(.text._ZN6charla3net6Worker3run17h0123456789abcdefE \
                 .text._ZN6charla3net6Worker3run17h0123456789abcdefE.*)",
                "    *(.text._RNvNtCsgEmfK2I1SDS_4core3fmt5write \
                 .text._RNvNtCsgEmfK2I1SDS_4core3fmt5write.*)",
                "    *(.text.main .text.main.*)",
                "    *(.text._ZN6charla3net6Worker3run17h*)",
                "  }",
                "}",
                "INSERT BEFORE .text;",
            ]
        );
    }

    #[test]
    fn only_a_legacy_hash_is_replaced() {
        assert_eq!(
            without_hash("_ZN3foo3bar17h00000000000000ffE").as_deref(),
            Some("_ZN3foo3bar17h*")
        );
        // Not hex, too short, not legacy-mangled, no final E.
        assert_eq!(without_hash("_ZN3foo3bar17h000000000000000gE"), None);
        assert_eq!(without_hash("_ZN3f17hE"), None);
        assert_eq!(
            without_hash("_RNvCs1234567890ab_3foo3bar17h0123456789abcdefE"),
            None
        );
        assert_eq!(without_hash("_ZN3foo3bar17h0123456789abcdef"), None);
        assert_eq!(without_hash("main"), None);
        assert_eq!(without_hash("_ZN3foo3bar\u{e9}17h0123456789abcdefE"), None);
        assert_eq!(without_hash("_ZN3foo3barxxxxxxxxxxxxxxxxx\u{e9}E"), None);
    }
}
