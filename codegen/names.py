"""The one mapping from names taken from a model to identifiers in generated code.

Every identifier a back end writes is made here, by a :class:`Namer` built for one model. The
rules (C99/C11, stated for C; the same class with other :class:`Rules` serves C++ and TCL):

* **Disjoint spaces.** onnxcc's own symbols are ``<m>_<tail>`` for the model prefix ``m``
  (lowercase), with a tail that never begins with a role word ``in``/``out`` and an underscore
  (:meth:`Namer.own`: ``w3``, ``s0``, ``k2_relu``, ``run``, ...); its macros are ``M_<TAIL>`` with
  ``M = m.upper()`` (:meth:`Namer.macro`). User-derived identifiers (:meth:`Namer.user`, the
  parameters of ``<m>_run``) are ``in_<name>`` / ``out_<name>``, or ``<m>_in_<name>`` /
  ``<m>_out_<name>`` when the short form would begin with ``<m>_`` (the prefix's space). So
  a tensor named ``w0`` in a model named ``in`` is ``in_in_w0``, never the weight array
  ``in_w0``. The runtime's space is ``onnxcc_`` / ``ONNXCC_``, which no model prefix and no user
  identifier begins with. Every identifier starts with a lowercase letter and every macro with
  an uppercase one, so no identifier equals a macro.
* **Sanitized**: NFKD-folded to ASCII, every other character an underscore, runs of underscores
  collapsed and stripped at both ends, lowercased; so no result holds a double underscore or
  starts with an underscore (the reserved identifiers of C and C++), and none starts with a digit.
* **Uniquified**: user names equal after sanitizing (``a-b`` and ``a_b``, ``X`` and ``x``, two
  non-ASCII names) get ``_2``, ``_3``, ... in the order they are asked for, so the result is
  deterministic for a given model.
* **Never a keyword or a library name**: no result, and no model prefix on its own, is a
  keyword of :attr:`Rules.keywords` (C89 to C23 for C) or a name in :attr:`Rules.reserved` (the
  functions, types and macros of the libc headers generated code includes).
* **Short enough**: C99 guarantees 31 significant characters for external identifiers and 63 for
  internal ones and macros. The model prefix is at most :data:`MAX_PREFIX` (18) characters, so the
  longest exported symbol (``<m>_weights_blob``) fits in 31 and all exported symbols are distinct
  in full; longer names keep their head and end in a stable hash of the original name. Internal
  identifiers are cut to 63 the same way. File names (``<m>_weights.bin`` at most) stay far below
  255 bytes.
* **The model prefix is renamed, not refused**, when it would clash with something outside the
  model: it becomes ``model_<m>`` when ``m`` begins with ``onnxcc`` (the runtime's files
  ``onnxcc_rt.h``, its symbols and macros, e.g. ``--name onnxcc_rt``), is a keyword or a library
  name, is the stem of a standard header (``math`` would write ``math.h`` beside the sources and
  shadow ``<math.h>``) or of a file the runtime builds with (``startup``), or is a name the build
  files cannot take (``m`` is libm in ``target_link_libraries``; CMake's reserved target names).
  The memory map records the prefix used (``c_prefix``).

Not enforced: the C library's "future directions" (external names starting with ``str``,
``mem``, ``is``, ``to`` plus a lowercase letter; macros starting with ``E`` plus a capital), which
would rename ordinary model names such as ``tokenizer`` or ``emnist`` for no practical gain. Two
models compiled into one program need different prefixes; that is the caller's choice.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

#: longest tail of an exported (external linkage) symbol: ``weights_blob``
EXPORTED_TAIL_MAX = len("weights_blob")
#: C99 5.2.4.1: significant initial characters of an external identifier
EXTERNAL_SIGNIFICANT = 31
#: ... of an internal identifier or a macro name
INTERNAL_SIGNIFICANT = 63
#: longest model prefix: ``<m>_weights_blob`` stays within 31 characters
MAX_PREFIX = EXTERNAL_SIGNIFICANT - 1 - EXPORTED_TAIL_MAX
#: the words that begin user-derived identifiers (``<m>_in_x``); no own tail may start with them
USER_ROLES = ("in", "out")

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn
_Static_assert _Thread_local _BitInt _Decimal32 _Decimal64 _Decimal128 alignas alignof bool
constexpr false nullptr static_assert thread_local true typeof typeof_unqual asm fortran
""".split())
CXX_KEYWORDS = C_KEYWORDS | frozenset("""
and and_eq bitand bitor catch char8_t char16_t char32_t class co_await co_return co_yield compl
concept const_cast consteval constinit decltype delete dynamic_cast explicit export friend
mutable namespace new noexcept not not_eq operator or or_eq private protected public
reinterpret_cast requires static_cast template this throw try typeid typename using virtual
wchar_t xor xor_eq final override import module std
""".split())

_MATH = """acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 frexp
ilogb ldexp log log10 log1p log2 logb modf scalbn scalbln cbrt fabs hypot pow sqrt erf erfc lgamma
tgamma ceil floor nearbyint rint lrint llrint round lround llround trunc fmod remainder remquo
copysign nan nextafter nexttoward fdim fmax fmin fma""".split()
#: functions, types and macros of the headers generated C includes (math, stdint, stddef, string)
#: and of those a harness commonly adds (stdio, stdlib, assert): no identifier may equal one.
LIBC_NAMES = frozenset(
    [f + s for f in _MATH for s in ("", "f", "l")] + """
memcpy memmove memset memcmp memchr strlen strcpy strncpy strcat strncat strcmp strncmp strchr
strrchr strstr strtok strerror strspn strcspn strpbrk strcoll strxfrm size_t ptrdiff_t wchar_t
max_align_t NULL offsetof int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t
intptr_t uintptr_t intmax_t uintmax_t int_least8_t int_least16_t int_least32_t int_least64_t
uint_least8_t uint_least16_t uint_least32_t uint_least64_t int_fast8_t int_fast16_t int_fast32_t
int_fast64_t uint_fast8_t uint_fast16_t uint_fast32_t uint_fast64_t INT8_MIN INT8_MAX UINT8_MAX
INT16_MIN INT16_MAX UINT16_MAX INT32_MIN INT32_MAX UINT32_MAX INT64_MIN INT64_MAX UINT64_MAX
SIZE_MAX PTRDIFF_MIN PTRDIFF_MAX INTPTR_MIN INTPTR_MAX UINTPTR_MAX INTMAX_MIN INTMAX_MAX
UINTMAX_MAX INT8_C INT16_C INT32_C INT64_C UINT8_C UINT16_C UINT32_C UINT64_C INTMAX_C UINTMAX_C
INFINITY NAN HUGE_VAL HUGE_VALF HUGE_VALL FP_NAN FP_INFINITE FP_ZERO FP_SUBNORMAL FP_NORMAL
FP_FAST_FMA FP_FAST_FMAF FP_ILOGB0 FP_ILOGBNAN MATH_ERRNO MATH_ERREXCEPT math_errhandling
float_t double_t fpclassify isfinite isinf isnan isnormal signbit isgreater isgreaterequal
isless islessequal islessgreater isunordered M_PI M_E FLT_MAX FLT_MIN DBL_MAX DBL_MIN FLT_EPSILON
DBL_EPSILON errno assert abort exit malloc calloc realloc free abs labs llabs div ldiv atoi atol
atof strtol strtoul strtod strtof qsort bsearch rand srand getenv printf fprintf sprintf snprintf
puts putchar fopen fclose fread fwrite FILE stdin stdout stderr EOF main signal raise setjmp
longjmp va_list va_start va_arg va_end va_copy bool true false y0 y1 yn j0 j1 jn
""".split())
#: stems of standard and common toolchain headers: a model prefix equal to one would write a
#: ``<m>.h`` that shadows ``<m.h>`` for any code built with ``-I<library folder>``
HEADER_STEMS = frozenset("""
assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign
stdarg stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn string tgmath
threads time uchar wchar wctype unistd strings alloca malloc memory arm_acle arm_neon arm_mve
arm_math cmsis_gcc immintrin xmmintrin emmintrin
""".split())
#: names the build files or the runtime's own sources cannot share: libm (``-lm`` and CMake's
#: ``target_link_libraries(... m)``), CMake's reserved target names, the QEMU startup file
BUILD_NAMES = frozenset("""
m all clean help install test package package_source edit_cache rebuild_cache depend
preinstall list_install_components zero_check all_build run_tests startup
""".split())


def stable_hash(text: str, n: int = 8) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``text`` (UTF-8): the same on every run."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def sanitize(text: str, fallback: str = "t") -> str:
    """An identifier fragment from untrusted ``text``: NFKD-folded to ASCII letters, digits and
    single underscores, no underscore at either end, never starting with a digit (``fallback_``
    is put in front), ``fallback`` when nothing is left. Case is kept."""
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_") or fallback
    return f"{fallback}_{s}" if s[0].isdigit() else s


def _fragment(part: object) -> str:
    """A part of an identifier after a prefix: letters, digits and single inner underscores."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(part)).strip("_") or "x"


def shorten(ident: str, limit: int, key: str) -> str:
    """``ident`` when it has at most ``limit`` characters; else its head and ``_`` plus a stable
    8-digit hash of ``key`` (the original, unsanitized name), ``limit`` characters in all."""
    if len(ident) <= limit:
        return ident
    head = ident[:limit - 9].rstrip("_")
    return f"{head}_{stable_hash(key)}"


@dataclass(frozen=True)
class Rules:
    """What one target language forbids: its keywords, the library names its generated code
    sees, the names a model prefix cannot take (file stems, build names), and how many initial
    characters of an external and of an internal identifier are significant."""

    keywords: frozenset[str] = C_KEYWORDS
    reserved: frozenset[str] = LIBC_NAMES
    prefix_stems: frozenset[str] = HEADER_STEMS | BUILD_NAMES
    external_significant: int = EXTERNAL_SIGNIFICANT
    internal_significant: int = INTERNAL_SIGNIFICANT

    def forbidden(self, ident: str) -> bool:
        """True when ``ident`` may not be used as it is: a keyword, a library name, or a
        reserved identifier (leading underscore, double underscore)."""
        return (ident in self.keywords or ident in self.reserved or ident.startswith("_")
                or "__" in ident)


#: C99/C11 (MCU and host C, and the LLVM back end's exported symbols, which share its header)
C_RULES = Rules()
#: C++ (HLS): C's rules plus the C++ keywords
CXX_RULES = Rules(keywords=CXX_KEYWORDS)


@dataclass
class Namer:
    """The identifiers of one model's generated code (see the module docstring for the rules).

    ``Namer(model_name).prefix`` is ``m``; :meth:`user` names the tensors a caller passes,
    :meth:`own` names onnxcc's symbols, :meth:`macro` its macros. Deterministic: the same calls in
    the same order give the same names.
    """

    model_name: str
    rules: Rules = C_RULES
    prefix: str = field(init=False)
    renamed: str = field(init=False, default="")   # why the prefix is not the sanitized name
    _users: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        m = sanitize(self.model_name, "model").lower()
        if m.startswith("onnxcc"):
            self.renamed = "names beginning with onnxcc belong to the runtime"
        elif m in self.rules.prefix_stems:
            self.renamed = f"{m!r} is a header or build name"
        elif self.rules.forbidden(m):
            self.renamed = f"{m!r} is a keyword or library name"
        if self.renamed:
            m = f"model_{m}"
        if len(m) > MAX_PREFIX:
            m = f"{m[:MAX_PREFIX - 7].rstrip('_')}_{stable_hash(self.model_name, 6)}"
        self.prefix = m

    @property
    def macro_prefix(self) -> str:
        """``M``: the prefix of every macro (and Make variable), ``prefix.upper()``."""
        return self.prefix.upper()

    def user(self, name: str, role: str) -> str:
        """The identifier for the user's tensor ``name`` in ``role`` (``"in"`` or ``"out"``):
        ``<role>_<sanitized name>``, or ``<m>_<role>_<sanitized name>`` when the short form would
        begin with ``<m>_``; lowercase, at most 63 characters (stable hash suffix when cut),
        uniquified with ``_2``, ``_3``, ... against every earlier :meth:`user` result."""
        if role not in USER_ROLES:
            raise ValueError(f"role must be one of {USER_ROLES}, not {role!r}")
        limit = self.rules.internal_significant
        frag = sanitize(name).lower()
        for long_form in (False, True):
            base = shorten(f"{self.prefix}_{role}_{frag}" if long_form else f"{role}_{frag}",
                           limit, name)
            ident, n = base, 1
            while ident in self._users or self.rules.forbidden(ident):
                n += 1
                ident = f"{base[:limit - len(str(n)) - 1].rstrip('_')}_{n}"
            # the short form may not be the prefix or enter its space (``<m>_...``); the long
            # form keeps its ``<m>_<role>_`` head, which no own tail has
            if long_form or (ident != self.prefix and not ident.startswith(f"{self.prefix}_")):
                break
        self._users.add(ident)
        return ident

    def own(self, *parts: object, external: bool = False) -> str:
        """onnxcc's symbol ``<m>_<parts joined by _>`` (each part sanitized, lowercase), e.g.
        ``own("w3")``, ``own("k2", "Relu")``, ``own("run", external=True)``.

        Internal names longer than 63 characters end in a stable hash; an ``external`` name
        must fit in 31 (the prefix is capped for the tails onnxcc exports) or ValueError. The
        first part may not be a user role word (``in``/``out``): that space is :meth:`user`'s.
        """
        tail = "_".join(_fragment(p).lower() for p in parts)
        if tail.split("_")[0] in USER_ROLES:
            raise ValueError(f"own symbol tail {tail!r} would enter the user space")
        ident = f"{self.prefix}_{tail}"
        if external:
            if len(ident) > self.rules.external_significant:
                raise ValueError(f"exported symbol {ident!r} is longer than "
                                 f"{self.rules.external_significant} characters")
        else:
            ident = shorten(ident, self.rules.internal_significant, tail)
        if self.rules.forbidden(ident):
            raise ValueError(f"own symbol {ident!r} is reserved")
        return ident

    def macro(self, *parts: object) -> str:
        """The macro ``M_<PARTS joined by _>`` (uppercase); ValueError beyond 63 characters."""
        ident = "_".join([self.macro_prefix, *(_fragment(p).upper() for p in parts)])
        if len(ident) > self.rules.internal_significant or self.rules.forbidden(ident):
            raise ValueError(f"macro {ident!r} is too long or reserved")
        return ident
