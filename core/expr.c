/* core/expr.c — expression compiler and vector VM (docs/driver.md#expression-language).
 *
 * Compilation is a lexer and a recursive-descent parser that emits register
 * bytecode directly (no AST): each operator either folds, when all its
 * operands are constants, or appends one instruction. Evaluation runs each
 * instruction over a chunk of pixels before the next (numexpr's model), so an
 * instruction costs one switch dispatch per chunk, then a tight loop the
 * compiler vectorises, once per instruction-set level (pgp/simd.h), or one
 * call of the vector math over the chunk.
 */
#include "pgp/expr.h"
#include "pgp/alloc.h"
#include "pgp/simd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_vsi.h"

/* Pixels per instruction sweep: a handful of registers of this size stay in L1. */
#define CHUNK_PIXELS 256
/* Programs with thousands of constants shrink the chunk instead of growing the
 * scratch without bound; results never depend on the chunk length. */
#define SCRATCH_BUDGET_BYTES (1 << 20)
/* Longest excerpt of the expression (or of a token) quoted in an error. */
#define QUOTE_WHOLE_UP_TO 80
#define QUOTE_PREFIX 60
#define QUOTE_TOKEN 40

/* ---- per-pixel operations ----------------------------------------------
 * One scalar function per operator, used both by the VM loops and by constant
 * folding, so a folded sub-expression gives the same bits as evaluating it. */

static inline double truth(int condition) { return condition ? 1.0 : 0.0; }

static inline double pixel_copy(double x) { return x; }
static inline double pixel_negate(double x) { return -x; }
static inline double pixel_not(double x) { return truth(x == 0); }
static inline double pixel_isnan(double x) { return truth(isnan(x)); }
static inline double pixel_isinf(double x) { return truth(isinf(x)); }

static inline double pixel_add(double a, double b) { return a + b; }
static inline double pixel_sub(double a, double b) { return a - b; }
static inline double pixel_mul(double a, double b) { return a * b; }
static inline double pixel_div(double a, double b) { return a / b; }
static inline double pixel_eq(double a, double b) { return truth(a == b); }
static inline double pixel_ne(double a, double b) { return truth(a != b); }
static inline double pixel_lt(double a, double b) { return truth(a < b); }
static inline double pixel_le(double a, double b) { return truth(a <= b); }
static inline double pixel_gt(double a, double b) { return truth(a > b); }
static inline double pixel_ge(double a, double b) { return truth(a >= b); }
/* Truthiness is v != 0, so NaN is true (as numpy's logical operators). */
static inline double pixel_and(double a, double b) { return truth((a != 0) & (b != 0)); }
static inline double pixel_or(double a, double b) { return truth((a != 0) | (b != 0)); }

/* numpy/Python floor modulo: the result takes the divisor's sign, x % 0 is NaN. */
static inline double pixel_mod(double a, double b)
{
    double m = fmod(a, b);
    if (m == 0)
        return copysign(0.0, b);
    return (m < 0) != (b < 0) ? m + b : m;
}

/* NaN in either operand propagates, as numpy.minimum / numpy.maximum. */
static inline double pixel_min(double a, double b) { return ((a < b) | isnan(a)) ? a : b; }
static inline double pixel_max(double a, double b) { return ((a > b) | isnan(a)) ? a : b; }

static inline double pixel_where(double c, double a, double b) { return c != 0 ? a : b; }
static inline double pixel_clamp(double x, double lo, double hi)
{
    return pixel_min(pixel_max(x, lo), hi);
}

/* Operators by arity: (opcode suffix, per-pixel function). Each of these is
 * exact or correctly rounded (IEEE arithmetic, sqrt, fmod, rounding), so any
 * vectorisation gives the scalar bits. */
#define UNARY_OPS(X)                                                                     \
    X(COPY, pixel_copy) X(NEG, pixel_negate) X(NOT, pixel_not) X(ABS, fabs)             \
    X(SQRT, sqrt) X(FLOOR, floor) X(CEIL, ceil) X(ROUND, round) X(TRUNC, trunc)         \
    X(ISNAN, pixel_isnan) X(ISINF, pixel_isinf)
#define BINARY_OPS(X)                                                                    \
    X(ADD, pixel_add) X(SUB, pixel_sub) X(MUL, pixel_mul) X(DIV, pixel_div)             \
    X(MOD, pixel_mod) X(FMOD, fmod) X(MIN, pixel_min) X(MAX, pixel_max) X(EQ, pixel_eq) \
    X(NE, pixel_ne) X(LT, pixel_lt) X(LE, pixel_le) X(GT, pixel_gt) X(GE, pixel_ge)     \
    X(AND, pixel_and) X(OR, pixel_or)
#define TERNARY_OPS(X) X(WHERE, pixel_where) X(CLAMP, pixel_clamp)
/* The transcendental functions: (opcode suffix, pgp_vec_math member), each
 * one call over the chunk. */
#define MATH_UNARY_OPS(X)                                                                \
    X(EXP, exp) X(LOG, log) X(LOG10, log10) X(LOG2, log2) X(SIN, sin) X(COS, cos)       \
    X(TAN, tan) X(ASIN, asin) X(ACOS, acos) X(ATAN, atan) X(SINH, sinh) X(COSH, cosh)   \
    X(TANH, tanh)
#define MATH_BINARY_OPS(X) X(POW, pow) X(ATAN2, atan2)

#define DECLARE_OPCODE(name, fn) OP_##name,
typedef enum opcode {
    UNARY_OPS(DECLARE_OPCODE) BINARY_OPS(DECLARE_OPCODE) TERNARY_OPS(DECLARE_OPCODE)
    MATH_UNARY_OPS(DECLARE_OPCODE) MATH_BINARY_OPS(DECLARE_OPCODE)
    OP_ISNODATA /* a is a variable register, whose index is the variable's */
} opcode;

/* dst = op(a, b, c); an operator with fewer operands repeats a in b and c so
 * every index is a valid register. */
typedef struct instruction {
    opcode op;
    int dst, a, b, c;
} instruction;

/* Register file layout at run time: [variables | constants | temporaries | out]. */
struct pgp_expr {
    instruction *code;
    int n_code;
    double *consts;
    int n_consts;
    int n_temps;
    int n_vars;
    unsigned char *reads; /* per variable: some instruction reads it */
    pgp_nodata *nodata;   /* per variable, for isnodata */
};

/* The VM step, inlined into one function per instruction-set level below. */
static inline __attribute__((always_inline)) void
run_instruction_on(const instruction *ins, double *const *reg, const pgp_nodata *nodata,
                   size_t len, const pgp_vec_math *math)
{
    double *dst = reg[ins->dst];
    const double *a = reg[ins->a], *b = reg[ins->b], *c = reg[ins->c];
    size_t i;
    switch (ins->op) {
#define UNARY_CASE(name, fn)                                                             \
    case OP_##name:                                                                      \
        for (i = 0; i < len; i++)                                                        \
            dst[i] = fn(a[i]);                                                           \
        break;
#define BINARY_CASE(name, fn)                                                            \
    case OP_##name:                                                                      \
        for (i = 0; i < len; i++)                                                        \
            dst[i] = fn(a[i], b[i]);                                                     \
        break;
#define TERNARY_CASE(name, fn)                                                           \
    case OP_##name:                                                                      \
        for (i = 0; i < len; i++)                                                        \
            dst[i] = fn(a[i], b[i], c[i]);                                               \
        break;
#define MATH_UNARY_CASE(name, fn)                                                        \
    case OP_##name:                                                                      \
        math->fn(a, dst, len);                                                           \
        break;
#define MATH_BINARY_CASE(name, fn)                                                       \
    case OP_##name:                                                                      \
        math->fn(a, b, dst, len);                                                        \
        break;
        UNARY_OPS(UNARY_CASE)
        BINARY_OPS(BINARY_CASE)
        TERNARY_OPS(TERNARY_CASE)
        MATH_UNARY_OPS(MATH_UNARY_CASE)
        MATH_BINARY_OPS(MATH_BINARY_CASE)
    case OP_ISNODATA:
        for (i = 0; i < len; i++)
            dst[i] = truth(pgp_is_nodata(&nodata[ins->a], a[i]));
        break;
    }
}

typedef void (*vm_step)(const instruction *ins, double *const *reg, const pgp_nodata *nodata,
                        size_t len, const pgp_vec_math *math);

PGP_ISA_VARIANTS(vm_step, run_instruction,
                 (const instruction *ins, double *const *reg, const pgp_nodata *nodata,
                  size_t len, const pgp_vec_math *math),
                 (ins, reg, nodata, len, math))

/* A NaN's sign and payload follow operand order, which neither the compiler
 * (commutative operators) nor SLEEF (its widths) keeps the same at every
 * level: each NaN result leaves as the one quiet NaN, so the output bits do
 * not depend on the level. Branch-free, so that it vectorises. */
static inline __attribute__((always_inline)) void canonicalise_nans_on(double *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        values[i] = isnan(values[i]) ? NAN : values[i];
}

typedef void (*canonicalise_fn)(double *values, size_t n);
PGP_ISA_VARIANTS(canonicalise_fn, canonicalise_nans, (double *values, size_t n), (values, n))

/* One instruction over len pixels at the active level. */
static void run_instruction(const instruction *ins, double *const *reg,
                            const pgp_nodata *nodata, size_t len)
{
    const pgp_isa isa = pgp_isa_active();
    run_instruction_levels[isa](ins, reg, nodata, len, pgp_vec_math_for(isa));
}

/* ---- lexer --------------------------------------------------------------- */

typedef enum token_kind {
    T_END, T_NUMBER, T_NAME, T_LPAREN, T_RPAREN, T_COMMA, T_QUESTION, T_COLON,
    T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT, T_POWER,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR, T_NOT,
    T_BAD /* problem says why; it takes the token text as "%.*s" */
} token_kind;

typedef struct token {
    token_kind kind;
    size_t start, len;
    double number;
    const char *problem;
} token;

/* Longest spellings first so "**" is not read as two "*". */
static const struct {
    const char *spelling;
    token_kind kind;
} symbols[] = {
    {"**", T_POWER}, {"==", T_EQ}, {"!=", T_NE}, {"<=", T_LE}, {">=", T_GE},
    {"&&", T_AND}, {"||", T_OR}, {"(", T_LPAREN}, {")", T_RPAREN}, {",", T_COMMA},
    {"?", T_QUESTION}, {":", T_COLON}, {"+", T_PLUS}, {"-", T_MINUS}, {"*", T_STAR},
    {"/", T_SLASH}, {"%", T_PERCENT}, {"^", T_POWER}, {"<", T_LT}, {">", T_GT},
    {"!", T_NOT},
};

static const struct {
    const char *word;
    token_kind kind;
} keywords[] = {{"and", T_AND}, {"or", T_OR}, {"not", T_NOT}};

/* ASCII only: the character classes must not depend on the locale. */
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static int is_name_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static int is_name_char(char ch) { return is_name_start(ch) || is_digit(ch); }
static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

static int token_is(token t, const char *text, const char *word)
{
    return t.len == strlen(word) && memcmp(text + t.start, word, t.len) == 0;
}

/* digits [. digits] [e [+-] digits], or . digits ...; a letter, digit, '_' or
 * '.' straight after makes the whole run one malformed number. */
static token lex_number(const char *text, size_t pos)
{
    token t = {T_NUMBER, pos, 0, 0.0, NULL};
    size_t i = pos;
    int well_formed = 1;
    while (is_digit(text[i]))
        i++;
    if (text[i] == '.')
        for (i++; is_digit(text[i]); i++)
            ;
    if (text[i] == 'e' || text[i] == 'E') {
        i++;
        if (text[i] == '+' || text[i] == '-')
            i++;
        well_formed = is_digit(text[i]);
        while (is_digit(text[i]))
            i++;
    }
    if (is_name_char(text[i]) || text[i] == '.') {
        well_formed = 0;
        while (is_name_char(text[i]) || text[i] == '.')
            i++;
    }
    t.len = i - pos;
    if (well_formed)
        t.number = CPLStrtod(text + pos, NULL); /* locale-independent decimal point */
    else {
        t.kind = T_BAD;
        t.problem = "malformed number '%.*s'";
    }
    return t;
}

/* The token starting at or after pos (after white space). */
static token lex(const char *text, size_t pos)
{
    token t = {T_END, pos, 0, 0.0, NULL};
    while (is_space(text[pos]))
        pos++;
    t.start = pos;
    const char *s = text + pos;
    if (*s == '\0')
        return t;
    if (is_digit(*s) || (*s == '.' && is_digit(s[1])))
        return lex_number(text, pos);
    if (is_name_start(*s)) {
        t.kind = T_NAME;
        while (is_name_char(s[t.len]))
            t.len++;
        for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
            if (token_is(t, text, keywords[k].word))
                t.kind = keywords[k].kind;
        return t;
    }
    for (size_t k = 0; k < sizeof symbols / sizeof symbols[0]; k++) {
        size_t n = strlen(symbols[k].spelling);
        if (strncmp(s, symbols[k].spelling, n) == 0) {
            t.kind = symbols[k].kind;
            t.len = n;
            return t;
        }
    }
    t.kind = T_BAD;
    t.len = 1;
    /* quote a whole UTF-8 sequence, never half of one */
    while ((unsigned char)s[0] >= 0x80 && ((unsigned char)s[t.len] & 0xC0) == 0x80)
        t.len++;
    t.problem = *s == '=' ? "unexpected '%.*s' (use '==' to compare)" : "unexpected character '%.*s'";
    return t;
}

/* ---- parser and code generation ----------------------------------------- */

/* Function names: a name is a function only when '(' follows it. */
#define VARIADIC (-1)
static const struct function {
    const char *name;
    int min_args, max_args;
    opcode op;
} functions[] = {
    {"abs", 1, 1, OP_ABS},     {"sqrt", 1, 1, OP_SQRT},         {"exp", 1, 1, OP_EXP},
    {"log", 1, 1, OP_LOG},     {"log10", 1, 1, OP_LOG10},       {"log2", 1, 1, OP_LOG2},
    {"sin", 1, 1, OP_SIN},     {"cos", 1, 1, OP_COS},           {"tan", 1, 1, OP_TAN},
    {"asin", 1, 1, OP_ASIN},   {"acos", 1, 1, OP_ACOS},         {"atan", 1, 1, OP_ATAN},
    {"atan2", 2, 2, OP_ATAN2}, {"sinh", 1, 1, OP_SINH},         {"cosh", 1, 1, OP_COSH},
    {"tanh", 1, 1, OP_TANH},   {"floor", 1, 1, OP_FLOOR},       {"ceil", 1, 1, OP_CEIL},
    {"round", 1, 1, OP_ROUND}, {"trunc", 1, 1, OP_TRUNC},       {"pow", 2, 2, OP_POW},
    {"fmod", 2, 2, OP_FMOD},   {"min", 2, VARIADIC, OP_MIN},    {"max", 2, VARIADIC, OP_MAX},
    {"clamp", 3, 3, OP_CLAMP}, {"where", 3, 3, OP_WHERE},       {"isnan", 1, 1, OP_ISNAN},
    {"isinf", 1, 1, OP_ISINF}, {"isnodata", 1, 1, OP_ISNODATA},
};

/* Named constants; a variable of the same name shadows them. */
static const struct {
    const char *name;
    double value;
} constants[] = {
    {"nan", NAN},
    {"inf", INFINITY},
    {"pi", 3.14159265358979323846264338327950288},
    {"e", 2.71828182845904523536028747135266250},
};

/* Binary operators by precedence level, all left-associative. */
static const struct binary_operator {
    token_kind token;
    int level;
    opcode op;
} binary_operators[] = {
    {T_OR, 1, OP_OR},      {T_AND, 2, OP_AND},    {T_EQ, 3, OP_EQ},     {T_NE, 3, OP_NE},
    {T_LT, 4, OP_LT},      {T_LE, 4, OP_LE},      {T_GT, 4, OP_GT},     {T_GE, 4, OP_GE},
    {T_PLUS, 5, OP_ADD},   {T_MINUS, 5, OP_SUB},  {T_STAR, 6, OP_MUL},  {T_SLASH, 6, OP_DIV},
    {T_PERCENT, 6, OP_MOD},
};
#define LOWEST_BINARY_LEVEL 1

/* While compiling, a register is (index << 2 | class); finish_program maps it
 * into the run-time layout once the number of constants and temporaries is
 * known. */
enum register_class { REG_VAR, REG_CONST, REG_TEMP, REG_OUT };
#define ENCODE_REG(cls, index) ((index) << 2 | (cls))
#define REG_CLASS(reg) ((reg) & 3)
#define REG_INDEX(reg) ((reg) >> 2)

/* A value while parsing: a compile-time constant, or a variable or temporary register. */
typedef struct operand {
    int is_const;
    double value;
    int reg;
} operand;

typedef struct parser {
    const char *text;
    token tok; /* the current token */
    const pgp_expr_var *vars;
    int n_vars;
    pgp_expr *prog;
    int code_capacity, consts_capacity;
    int live_temps; /* temporaries are allocated and released as a stack */
    int depth;
    int failed;
    size_t error_pos;
    char problem[256];
} parser;

static const operand no_operand = {1, 0.0, 0};

static void fail(parser *p, size_t pos, const char *format, ...) CPL_PRINT_FUNC_FORMAT(3, 4);
static void fail(parser *p, size_t pos, const char *format, ...)
{
    va_list args;
    if (p->failed)
        return; /* the first error is the one to report */
    p->failed = 1;
    p->error_pos = pos;
    va_start(args, format);
    vsnprintf(p->problem, sizeof p->problem, format, args);
    va_end(args);
}

static int quoted_length(size_t len) { return (int)(len < QUOTE_TOKEN ? len : QUOTE_TOKEN); }

static void advance(parser *p)
{
    p->tok = lex(p->text, p->tok.start + p->tok.len);
    if (p->tok.kind == T_BAD)
        fail(p, p->tok.start, p->tok.problem, quoted_length(p->tok.len), p->text + p->tok.start);
}

/* Called on the token that opens a nesting level, so an error names it. */
static int enter(parser *p)
{
    if (++p->depth > PGP_EXPR_MAX_DEPTH)
        fail(p, p->tok.start, "nesting deeper than %d", PGP_EXPR_MAX_DEPTH);
    return !p->failed;
}

static void leave(parser *p) { p->depth--; }

/* array, grown if needed to hold count + 1 elements of size bytes; NULL when
 * memory runs out (array is then still valid). */
static void *reserve(parser *p, void *array, int *capacity, int count, size_t size)
{
    if (count < *capacity)
        return array;
    int grown = *capacity ? 2 * *capacity : 16;
    void *bigger = pgp_realloc(array, (size_t)grown * size);
    if (!bigger) {
        fail(p, 0, "out of memory");
        return NULL;
    }
    *capacity = grown;
    return bigger;
}

static void emit(parser *p, opcode op, int dst, int a, int b, int c)
{
    pgp_expr *prog = p->prog;
    instruction *code = reserve(p, prog->code, &p->code_capacity, prog->n_code, sizeof *code);
    if (!code)
        return;
    prog->code = code;
    code[prog->n_code++] = (instruction){op, dst, a, b, c};
}

/* The register holding arg; constants get one register per distinct bit pattern. */
static int register_of(parser *p, const operand *arg)
{
    pgp_expr *prog = p->prog;
    if (!arg->is_const) {
        if (REG_CLASS(arg->reg) == REG_VAR)
            prog->reads[REG_INDEX(arg->reg)] = 1;
        return arg->reg;
    }
    for (int k = 0; k < prog->n_consts; k++)
        if (memcmp(&prog->consts[k], &arg->value, sizeof(double)) == 0)
            return ENCODE_REG(REG_CONST, k);
    double *consts = reserve(p, prog->consts, &p->consts_capacity, prog->n_consts, sizeof *consts);
    if (!consts)
        return 0;
    prog->consts = consts;
    consts[prog->n_consts] = arg->value;
    return ENCODE_REG(REG_CONST, prog->n_consts++);
}

static double fold(opcode op, const operand *args, int n_args)
{
    double value[4]; /* result, then operands */
    double *reg[4] = {&value[0], &value[1], &value[2], &value[3]};
    instruction ins = {op, 0, 1, n_args > 1 ? 2 : 1, n_args > 2 ? 3 : 1};
    for (int k = 0; k < n_args; k++)
        value[1 + k] = args[k].value;
    run_instruction(&ins, reg, NULL, 1); /* isnodata never folds: its operand is a variable */
    return value[0];
}

/* op applied to 1..3 operands: folded when all are constant, else one
 * instruction whose result takes the lowest temporary the operands free. */
static operand apply(parser *p, opcode op, const operand *args, int n_args)
{
    int all_const = 1, reg[3];
    operand result = no_operand;
    if (p->failed)
        return result;
    for (int k = 0; k < n_args; k++)
        all_const &= args[k].is_const;
    if (all_const) {
        result.value = fold(op, args, n_args);
        return result;
    }
    for (int k = 0; k < n_args; k++)
        reg[k] = register_of(p, &args[k]);
    for (int k = n_args; k-- > 0;)
        if (!args[k].is_const && REG_CLASS(args[k].reg) == REG_TEMP)
            p->live_temps--;
    result.is_const = 0;
    result.reg = ENCODE_REG(REG_TEMP, p->live_temps);
    if (++p->live_temps > p->prog->n_temps)
        p->prog->n_temps = p->live_temps;
    emit(p, op, result.reg, reg[0], reg[n_args > 1 ? 1 : 0], reg[n_args > 2 ? 2 : 0]);
    return result;
}

static int find_variable(const parser *p, token name)
{
    for (int v = 0; v < p->n_vars; v++)
        if (p->vars[v].name && token_is(name, p->text, p->vars[v].name))
            return v;
    return -1;
}

static operand variable_operand(int v)
{
    operand x = {0, 0.0, ENCODE_REG(REG_VAR, v)};
    return x;
}

static operand parse_ternary(parser *p);
static operand parse_unary(parser *p);

/* isnodata's argument: a bare variable name. */
static operand parse_variable_name(parser *p)
{
    token t = p->tok;
    token_kind next = lex(p->text, t.start + t.len).kind;
    int v = t.kind == T_NAME && (next == T_COMMA || next == T_RPAREN) ? find_variable(p, t) : -1;
    if (v < 0) {
        fail(p, t.start, "isnodata() takes a variable name");
        return no_operand;
    }
    advance(p);
    return variable_operand(v);
}

/* name '(' args ')', the current token being the '('. */
static operand parse_call(parser *p, token name)
{
    const struct function *f = NULL;
    operand args[3];
    int n_args = 0;
    for (size_t k = 0; k < sizeof functions / sizeof functions[0]; k++)
        if (token_is(name, p->text, functions[k].name))
            f = &functions[k];
    if (!f) {
        fail(p, name.start, "unknown function '%.*s'", quoted_length(name.len),
             p->text + name.start);
        return no_operand;
    }
    if (!enter(p))
        return no_operand;
    advance(p);
    while (!p->failed && p->tok.kind != T_RPAREN) {
        if (n_args > 0) {
            if (p->tok.kind != T_COMMA) {
                fail(p, p->tok.start, "expected ',' or ')'");
                break;
            }
            advance(p);
        }
        operand arg = f->op == OP_ISNODATA ? parse_variable_name(p) : parse_ternary(p);
        if (f->max_args == VARIADIC && n_args > 0) {
            /* min/max reduce pairwise as arguments arrive: few live registers */
            operand pair[2] = {args[0], arg};
            args[0] = apply(p, f->op, pair, 2);
        } else if (n_args < 3) {
            args[n_args] = arg;
        }
        n_args++;
    }
    if (p->failed)
        return no_operand;
    advance(p);
    leave(p);
    if (f->max_args == VARIADIC && n_args < f->min_args)
        fail(p, name.start, "function '%s' takes at least %d arguments, got %d", f->name,
             f->min_args, n_args);
    else if (f->max_args != VARIADIC && n_args != f->min_args)
        fail(p, name.start, "function '%s' takes %d argument%s, got %d", f->name, f->min_args,
             f->min_args == 1 ? "" : "s", n_args);
    if (p->failed)
        return no_operand;
    return f->max_args == VARIADIC ? args[0] : apply(p, f->op, args, n_args);
}

static operand parse_name(parser *p)
{
    token name = p->tok;
    operand x = no_operand;
    int v;
    if (lex(p->text, name.start + name.len).kind == T_LPAREN) {
        advance(p);
        return parse_call(p, name);
    }
    if ((v = find_variable(p, name)) >= 0) {
        advance(p);
        return variable_operand(v);
    }
    for (size_t k = 0; k < sizeof constants / sizeof constants[0]; k++)
        if (token_is(name, p->text, constants[k].name)) {
            x.value = constants[k].value;
            advance(p);
            return x;
        }
    fail(p, name.start, "unknown name '%.*s'", quoted_length(name.len), p->text + name.start);
    return x;
}

static operand parse_primary(parser *p)
{
    token t = p->tok;
    operand x = no_operand;
    switch (t.kind) {
    case T_NUMBER:
        x.value = t.number;
        advance(p);
        return x;
    case T_NAME:
        return parse_name(p);
    case T_LPAREN:
        if (!enter(p))
            return x;
        advance(p);
        x = parse_ternary(p);
        if (!p->failed && p->tok.kind != T_RPAREN)
            fail(p, p->tok.start, "expected ')' to close the '(' at column %zu", t.start + 1);
        if (p->failed)
            return no_operand;
        advance(p);
        leave(p);
        return x;
    default:
        fail(p, t.start, "expected an operand");
        return x;
    }
}

/* primary [('**' | '^') unary]: the exponent may carry a sign and is itself a
 * power, which makes '**' right-associative. */
static operand parse_power(parser *p)
{
    operand args[2];
    args[0] = parse_primary(p);
    if (p->failed || p->tok.kind != T_POWER)
        return args[0];
    if (!enter(p))
        return no_operand;
    advance(p);
    args[1] = parse_unary(p);
    leave(p);
    return apply(p, OP_POW, args, 2);
}

/* Unary operators bind looser than '**': -2**2 is -(2**2). */
static operand parse_unary(parser *p)
{
    token_kind kind = p->tok.kind;
    operand x;
    if (kind != T_MINUS && kind != T_PLUS && kind != T_NOT)
        return parse_power(p);
    if (!enter(p))
        return no_operand;
    advance(p);
    x = parse_unary(p);
    leave(p);
    return kind == T_PLUS ? x : apply(p, kind == T_MINUS ? OP_NEG : OP_NOT, &x, 1);
}

static const struct binary_operator *find_binary_operator(token_kind kind)
{
    for (size_t k = 0; k < sizeof binary_operators / sizeof binary_operators[0]; k++)
        if (binary_operators[k].token == kind)
            return &binary_operators[k];
    return NULL;
}

/* Precedence climbing over the binary operators of level >= min_level; the
 * recursion is bounded by the number of levels. */
static operand parse_binary(parser *p, int min_level)
{
    operand args[2];
    args[0] = parse_unary(p);
    for (;;) {
        const struct binary_operator *binary = find_binary_operator(p->tok.kind);
        if (p->failed || !binary || binary->level < min_level)
            return args[0];
        advance(p);
        args[1] = parse_binary(p, binary->level + 1);
        args[0] = apply(p, binary->op, args, 2);
    }
}

/* cond ? a : b, right-associative, lowest precedence. */
static operand parse_ternary(parser *p)
{
    operand args[3];
    args[0] = parse_binary(p, LOWEST_BINARY_LEVEL);
    if (p->failed || p->tok.kind != T_QUESTION)
        return args[0];
    if (!enter(p))
        return no_operand;
    advance(p);
    args[1] = parse_ternary(p);
    if (!p->failed && p->tok.kind != T_COLON)
        fail(p, p->tok.start, "expected ':'");
    if (p->failed)
        return no_operand;
    advance(p);
    args[2] = parse_ternary(p);
    leave(p);
    return apply(p, OP_WHERE, args, 3);
}

/* Routes the root value into the output register and lays the registers out as
 * [variables | constants | temporaries | out]. */
static void finish_program(parser *p, operand root)
{
    pgp_expr *prog = p->prog;
    if (!root.is_const && REG_CLASS(root.reg) == REG_TEMP)
        prog->code[prog->n_code - 1].dst = ENCODE_REG(REG_OUT, 0); /* its producer is last */
    else {
        int source = register_of(p, &root);
        emit(p, OP_COPY, ENCODE_REG(REG_OUT, 0), source, source, source);
    }
    if (p->failed)
        return;
    const int base[4] = {0, prog->n_vars, prog->n_vars + prog->n_consts,
                         prog->n_vars + prog->n_consts + prog->n_temps};
    for (int k = 0; k < prog->n_code; k++) {
        int *regs[4] = {&prog->code[k].dst, &prog->code[k].a, &prog->code[k].b, &prog->code[k].c};
        for (int r = 0; r < 4; r++)
            *regs[r] = base[REG_CLASS(*regs[r])] + REG_INDEX(*regs[r]);
    }
}

static void format_error(const char *text, size_t len, size_t pos, const char *problem,
                         char *err, size_t errlen)
{
    int quoted = (int)len;
    const char *ellipsis = "";
    if (!err || errlen == 0)
        return;
    if (len > QUOTE_WHOLE_UP_TO) {
        quoted = QUOTE_PREFIX;
        while (quoted > 0 && ((unsigned char)text[quoted] & 0xC0) == 0x80)
            quoted--; /* do not cut a UTF-8 sequence */
        ellipsis = "...";
    }
    snprintf(err, errlen, "expression '%.*s%s' at column %zu: %s", quoted, text, ellipsis,
             pos + 1, problem);
}

void pgp_expr_free(pgp_expr *expr)
{
    if (!expr)
        return;
    pgp_free(expr->code);
    pgp_free(expr->consts);
    pgp_free(expr->reads);
    pgp_free(expr->nodata);
    pgp_free(expr);
}

pgp_expr *pgp_expr_compile(const char *text, const pgp_expr_var *vars, int n_vars, char *err,
                           size_t errlen)
{
    parser p;
    size_t len;
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        text = "";
    if (n_vars < 0)
        n_vars = 0;
    len = strlen(text);
    if (len > PGP_EXPR_MAX_LENGTH) {
        char problem[96];
        snprintf(problem, sizeof problem, "expression is %zu characters long, the limit is %d",
                 len, PGP_EXPR_MAX_LENGTH);
        format_error(text, len, PGP_EXPR_MAX_LENGTH, problem, err, errlen);
        return NULL;
    }

    memset(&p, 0, sizeof p);
    p.text = text;
    p.vars = vars;
    p.n_vars = n_vars;
    p.prog = pgp_calloc(1, sizeof *p.prog);
    if (p.prog) {
        p.prog->n_vars = n_vars;
        p.prog->reads = pgp_calloc((size_t)n_vars + 1, 1);
        p.prog->nodata = pgp_calloc((size_t)n_vars + 1, sizeof *p.prog->nodata);
    }
    if (!p.prog || !p.prog->reads || !p.prog->nodata)
        fail(&p, 0, "out of memory");
    else
        for (int v = 0; v < n_vars; v++)
            p.prog->nodata[v] = vars[v].nodata;

    advance(&p);
    if (p.tok.kind == T_END)
        fail(&p, 0, "empty expression");
    operand root = parse_ternary(&p);
    if (!p.failed && p.tok.kind != T_END)
        fail(&p, p.tok.start, "unexpected '%.*s'", quoted_length(p.tok.len), text + p.tok.start);
    if (!p.failed)
        finish_program(&p, root);
    if (p.failed) {
        format_error(text, len, p.error_pos, p.problem, err, errlen);
        pgp_expr_free(p.prog);
        return NULL;
    }
    return p.prog;
}

int pgp_expr_reads_var(const pgp_expr *expr, int var_index)
{
    return expr && var_index >= 0 && var_index < expr->n_vars && expr->reads[var_index];
}

int pgp_expr_eval(const pgp_expr *expr, const double *const *inputs, size_t n, double *out)
{
    const int n_scratch = expr->n_consts + expr->n_temps;
    const int out_reg = expr->n_vars + n_scratch;
    size_t chunk = CHUNK_PIXELS;
    if (n == 0)
        return 0;
    if ((size_t)n_scratch * chunk * sizeof(double) > SCRATCH_BUDGET_BYTES)
        chunk = SCRATCH_BUDGET_BYTES / ((size_t)n_scratch * sizeof(double)) + 1;
    if (chunk > n)
        chunk = n;

    /* one block: the scratch vectors, then the register table */
    const size_t scratch_bytes = (size_t)n_scratch * chunk * sizeof(double);
    const size_t bytes = scratch_bytes + ((size_t)out_reg + 1) * sizeof(double *);
    double *scratch = pgp_malloc(bytes);
    if (!scratch)
        return -1;
    double **reg = (double **)((char *)scratch + scratch_bytes);
    for (int k = 0; k < n_scratch; k++)
        reg[expr->n_vars + k] = scratch + (size_t)k * chunk;
    for (int k = 0; k < expr->n_consts; k++)
        for (size_t i = 0; i < chunk; i++)
            reg[expr->n_vars + k][i] = expr->consts[k];

    const pgp_isa isa = pgp_isa_active();
    const vm_step step = run_instruction_levels[isa];
    const canonicalise_fn canonicalise_nans = canonicalise_nans_levels[isa];
    const pgp_vec_math *math = pgp_vec_math_for(isa);
    for (size_t offset = 0; offset < n; offset += chunk) {
        const size_t len = n - offset < chunk ? n - offset : chunk;
        /* variables are read in place; no instruction ever writes to them */
        for (int v = 0; v < expr->n_vars; v++)
            reg[v] = expr->reads[v] ? (double *)(inputs[v] + offset) : NULL;
        reg[out_reg] = out + offset;
        for (int k = 0; k < expr->n_code; k++)
            step(&expr->code[k], reg, expr->nodata, len, math);
        canonicalise_nans(out + offset, len);
    }
    pgp_free(scratch);
    return 0;
}
