"""File extensions by category: the registry classify reads (tasks.classify.categories) and
what is left alone asks (storage.leave_alone: which hidden files --include-hidden sorts).
Plain frozensets of lowercase extensions without the dot, importing nothing."""

from __future__ import annotations

from collections.abc import Mapping

# The single registry of extension rules, by category (storage.vocabulary.CATEGORIES but
# "other"). An extension may appear under one category only (tasks.classify.categories
# refuses duplicates).
# fmt: off
RULES: Mapping[str, frozenset[str]] = {
    "images": frozenset(
        {
            "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "bmp", "dib", "tif", "tiff",
            "webp", "heic", "heif", "hif", "avif", "jxl", "jp2", "j2k", "jpf", "jpx", "svg",
            "svgz", "ico", "icns", "cur", "psd", "psb", "xcf", "tga", "exr", "hdr", "pbm", "pgm",
            "ppm", "pnm", "pcx", "eps", "ai", "wmf", "emf", "dds", "qoi",
            # camera raw
            "raw", "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2",
            "raf", "pef", "ptx", "srw", "x3f", "3fr", "fff", "erf", "kdc", "dcr", "mrw", "mef",
            "mos", "rwl", "iiq", "gpr",
        }
    ),
    "videos": frozenset(
        {
            "mp4", "m4v", "mov", "qt", "mkv", "webm", "avi", "wmv", "asf", "flv", "f4v", "mpg",
            "mpeg", "mpe", "m1v", "m2v", "mp2v", "m2ts", "mts", "m2t", "vob", "3gp", "3g2",
            "ogv", "rm", "rmvb", "divx", "dv", "mxf", "insv", "lrv", "mod", "tod", "y4m",
        }
    ),
    "audio": frozenset(
        {
            "mp3", "m4a", "m4b", "m4p", "aac", "wav", "wave", "flac", "ogg", "oga", "opus",
            "spx", "wma", "aiff", "aif", "aifc", "ape", "wv", "amr", "awb", "mid", "midi", "kar",
            "mka", "dsf", "dff", "caf", "au", "snd", "ac3", "eac3", "dts", "ra", "mp2", "mpa",
            "tta", "mpc", "xm", "it", "s3m",
        }
    ),
    "documents": frozenset(
        {
            "pdf", "doc", "docx", "docm", "dot", "dotx", "dotm", "odt", "ott", "fodt", "sxw",
            "rtf", "txt", "text", "md", "markdown", "rst", "org", "adoc", "tex", "ltx", "pages",
            "wpd", "wps", "xps", "oxps", "abw", "hwp",
        }
    ),
    "spreadsheets": frozenset(
        {
            "xls", "xlsx", "xlsm", "xlsb", "xlt", "xltx", "xltm", "ods", "ots", "fods", "csv",
            "tsv", "numbers", "gnumeric", "sxc",
        }
    ),
    "presentations": frozenset(
        {
            "ppt", "pptx", "pptm", "pps", "ppsx", "ppsm", "pot", "potx", "potm", "odp", "otp",
            "fodp", "key", "sxi",
        }
    ),
    "archives": frozenset(
        {
            "zip", "zipx", "7z", "rar", "tar", "gz", "tgz", "bz2", "tbz", "tbz2", "xz", "txz",
            "zst", "tzst", "lz", "lzma", "tlz", "lz4", "lzo", "z", "cab", "arj", "lzh", "lha",
            "ace", "cpio", "iso", "img", "dmg", "deb", "rpm", "apk", "xpi", "jar", "war", "ear",
            "tar.gz", "tar.bz2", "tar.xz", "tar.zst",
        }
    ),
    "code": frozenset(
        {
            "py", "pyi", "pyw", "pyx", "pxd", "ipynb", "js", "mjs", "cjs", "jsx", "ts", "tsx",
            "cts", "c", "h", "cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "inl",
            "m", "mm", "rs", "go", "java", "kt", "kts", "scala", "sc", "groovy", "gradle", "clj",
            "cljs", "edn", "swift", "cs", "fs", "fsx", "vb", "rb", "erb", "php", "pl", "pm", "lua",
            "r", "jl", "dart", "hs", "lhs", "ml", "mli", "ex", "exs", "erl", "hrl", "elm", "nim",
            "zig", "d", "f", "f90", "f95", "for", "pas", "asm", "s", "sh", "bash", "zsh", "fish",
            "ksh", "csh", "ps1", "psm1", "bat", "cmd", "awk", "sed", "tcl", "vim", "el", "lisp",
            "scm", "rkt", "html", "htm", "xhtml", "css", "scss", "sass", "less", "vue", "svelte",
            "json", "jsonc", "json5", "jsonl", "ndjson", "yaml", "yml", "toml", "ini", "cfg",
            "conf", "xml", "xsl", "xslt", "xsd", "sql", "graphql", "gql", "proto", "thrift",
            "cmake", "mk", "make", "dockerfile", "tf", "tfvars", "hcl", "nix", "sol", "v", "sv",
            "vhd", "vhdl", "patch", "diff",
        }
    ),
    "fonts": frozenset(
        {"ttf", "otf", "woff", "woff2", "eot", "ttc", "otc", "pfb", "pfm", "pfa", "afm", "fon",
         "fnt", "bdf", "pcf", "dfont"}
    ),
    "ebooks": frozenset(
        {"epub", "mobi", "azw", "azw3", "azw4", "kfx", "fb2", "fbz", "djvu", "djv", "ibooks",
         "lit", "lrf", "cbz", "cbr", "cb7", "cbt"}
    ),
}
# fmt: on

# Compound endings kept whole, because "gz" alone would lose that the file is a tarball.
COMPOUND_EXTENSIONS: frozenset[str] = frozenset({"tar.gz", "tar.bz2", "tar.xz", "tar.zst"})
