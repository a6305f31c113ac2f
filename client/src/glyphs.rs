//! Which characters the system's fonts can draw, so that a character no font has is shown as a
//! visible placeholder instead of nothing (the renderer draws no box for a missing glyph).
//!
//! Asks fontconfig, which the window already loads (Slint finds its fonts through it): the union
//! of the character sets of every installed outline font that is not a colour font (Slint's
//! software renderer draws neither bitmaps nor colour glyphs), computed once.

use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

/// Shown instead of a character that no installed font can draw.
pub const PLACEHOLDER: char = '\u{FFFD}';

#[repr(C)]
struct FcFontSet {
    nfont: c_int,
    sfont: c_int,
    fonts: *mut *mut c_void,
}

const FC_RESULT_MATCH: c_int = 0;

#[link(name = "fontconfig")]
extern "C" {
    fn FcInitLoadConfigAndFonts() -> *mut c_void;
    fn FcConfigDestroy(config: *mut c_void);
    fn FcPatternCreate() -> *mut c_void;
    fn FcPatternDestroy(pattern: *mut c_void);
    fn FcObjectSetCreate() -> *mut c_void;
    fn FcObjectSetAdd(set: *mut c_void, object: *const c_char) -> c_int;
    fn FcObjectSetDestroy(set: *mut c_void);
    fn FcFontList(config: *mut c_void, pattern: *mut c_void, set: *mut c_void) -> *mut FcFontSet;
    fn FcFontSetDestroy(set: *mut FcFontSet);
    fn FcPatternGetBool(
        pattern: *const c_void,
        object: *const c_char,
        n: c_int,
        value: *mut c_int,
    ) -> c_int;
    fn FcPatternGetCharSet(
        pattern: *const c_void,
        object: *const c_char,
        n: c_int,
        charset: *mut *mut c_void,
    ) -> c_int;
    fn FcCharSetCreate() -> *mut c_void;
    fn FcCharSetMerge(into: *mut c_void, from: *const c_void, changed: *mut c_int) -> c_int;
    fn FcCharSetHasChar(charset: *const c_void, ucs4: u32) -> c_int;
}

/// Every character some installed font has. Built once, then only read.
struct Coverage(*mut c_void);

// SAFETY: the character set is never changed after it is built, and fontconfig's read-only
// queries on it are safe from any thread.
unsafe impl Send for Coverage {}
unsafe impl Sync for Coverage {}

impl Coverage {
    fn load() -> Option<Coverage> {
        let charset_name = c"charset".as_ptr();
        let color_name = c"color".as_ptr();
        let outline_name = c"outline".as_ptr();
        // SAFETY: plain fontconfig calls; every object made here is destroyed here, except the
        // merged character set, which lives as long as the program.
        unsafe {
            let config = FcInitLoadConfigAndFonts();
            if config.is_null() {
                return None;
            }
            let pattern = FcPatternCreate();
            let objects = FcObjectSetCreate();
            FcObjectSetAdd(objects, charset_name);
            FcObjectSetAdd(objects, color_name);
            FcObjectSetAdd(objects, outline_name);
            let fonts = FcFontList(config, pattern, objects);
            let all = FcCharSetCreate();
            let mut found = false;
            if !fonts.is_null() {
                let set = &*fonts;
                for i in 0..set.nfont.max(0) as usize {
                    let font = *set.fonts.add(i);
                    // The renderer draws outline glyphs only: a colour (bitmap) emoji font or a
                    // bitmap font draws nothing for it.
                    let flag = |name: *const c_char| {
                        let mut value: c_int = 0;
                        (FcPatternGetBool(font, name, 0, &mut value) == FC_RESULT_MATCH)
                            .then_some(value != 0)
                    };
                    if flag(color_name) == Some(true) || flag(outline_name) == Some(false) {
                        continue;
                    }
                    let mut chars = std::ptr::null_mut();
                    if FcPatternGetCharSet(font, charset_name, 0, &mut chars) == FC_RESULT_MATCH {
                        FcCharSetMerge(all, chars, std::ptr::null_mut());
                        found = true;
                    }
                }
                FcFontSetDestroy(fonts);
            }
            FcObjectSetDestroy(objects);
            FcPatternDestroy(pattern);
            FcConfigDestroy(config);
            found.then_some(Coverage(all))
        }
    }

    fn has(&self, c: char) -> bool {
        // SAFETY: a valid character set, only read.
        unsafe { FcCharSetHasChar(self.0, c as u32) != 0 }
    }
}

fn coverage() -> Option<&'static Coverage> {
    static COVERAGE: OnceLock<Option<Coverage>> = OnceLock::new();
    COVERAGE.get_or_init(Coverage::load).as_ref()
}

/// Characters that are meant to draw nothing (joiners, variation selectors, format controls,
/// fillers): no font needs them, and a placeholder would break an emoji sequence.
fn draws_nothing(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// `text` with every character that no installed font can draw replaced by [`PLACEHOLDER`].
pub fn visible(text: &str) -> Cow<'_, str> {
    let Some(fonts) = coverage() else {
        return Cow::Borrowed(text);
    };
    let missing = |c: char| !draws_nothing(c) && !c.is_ascii() && !fonts.has(c);
    if !text.chars().any(missing) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if missing(c) { PLACEHOLDER } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fonts_have_is_kept_and_the_rest_replaced() {
        // Debian's fontconfig always has DejaVu (fonts-dejavu-core, a dependency of
        // libfontconfig1): Latin letters are kept.
        assert_eq!(visible("hola, qué tal"), "hola, qué tal");
        // An unassigned code point is in no font.
        assert_eq!(visible("a\u{50000}b"), format!("a{PLACEHOLDER}b"));
        // Joiners and variation selectors stay: they draw nothing on purpose.
        assert_eq!(visible("a\u{200D}\u{FE0F}b"), "a\u{200D}\u{FE0F}b");
    }
}
