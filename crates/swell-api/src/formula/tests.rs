use std::collections::HashMap;

use super::{FormulaError, Limits, SyntaxError, compile, compile_with};

/// Compiles `src` over `vars` and runs it with their values; errors as their messages.
fn run(src: &str, vars: &[(&str, Option<f64>)]) -> Result<Option<f64>, String> {
    let names: Vec<&str> = vars.iter().map(|(n, _)| *n).collect();
    let values: Vec<Option<f64>> = vars.iter().map(|(_, v)| *v).collect();
    let formula = compile(src, &names).map_err(|e| e.to_string())?;
    formula.eval(&values).map_err(|e| e.to_string())
}

fn error(src: &str, vars: &[(&str, Option<f64>)]) -> String {
    match run(src, vars) {
        Err(e) => e,
        ok => panic!("{src}: expected an error, got {ok:?}"),
    }
}

/// The formulas of KEDA's formula_test.go, scaledobject_webhook_test.go and docs.
#[test]
fn keda_formulas() {
    let (wt, ct) = (("workload_trig", Some(1.0)), ("cron_trig", Some(4.0)));
    let (t1, t2) = (("trig_one", Some(1.5)), ("trig_two", Some(3.0)));
    type Case<'a> = (&'a str, &'a [(&'a str, Option<f64>)], Option<f64>);
    let cases: &[Case] = &[
        (
            "trigger1 + trigger2",
            &[("trigger1", Some(2.0)), ("trigger2", Some(5.0))],
            Some(7.0),
        ),
        (
            "trigger1 ?? trigger2",
            &[("trigger1", None), ("trigger2", None)],
            None,
        ),
        (
            "trigger1 ?? trigger2",
            &[("trigger1", None), ("trigger2", Some(3.0))],
            Some(3.0),
        ),
        ("workload_trig + cron_trig", &[wt, ct], Some(5.0)),
        ("workload_trig + 1", &[wt], Some(2.0)),
        ("float(workload_trig + 1)", &[wt], Some(2.0)),
        (
            "float(workload_trig < 5 ? cron_trig + workload_trig : 5)",
            &[wt, ct],
            Some(5.0),
        ),
        (
            "workload_trig < 5 ? cron_trig + workload_trig : 5",
            &[("workload_trig", Some(7.0)), ct],
            Some(5.0),
        ),
        (
            "count([trig_one,trig_two],{#>1}) > 1 ? 5 : 0",
            &[t1, t2],
            Some(5.0),
        ),
        (
            "count([trig_one,trig_two],{#>1}) > 1 ? 5 : 0",
            &[("trig_one", Some(0.5)), t2],
            Some(0.0),
        ),
        (
            "float(trig_one < 2 ? trig_one+trig_two >= 2 ? 5 : 10 : 0)",
            &[t1, t2],
            Some(5.0),
        ),
        (
            "float(float(trig_two < 5 ? trig_one + trig_two : 5))",
            &[t1, t2],
            Some(4.5),
        ),
        ("trig_one ?? trig_two ?? 5", &[t1, t2], Some(1.5)),
        (
            "trig_one ?? trig_two ?? 5",
            &[("trig_one", None), t2],
            Some(3.0),
        ),
        (
            "trig_one ?? trig_two ?? 5",
            &[("trig_one", None), ("trig_two", None)],
            Some(5.0),
        ),
        ("(trig_one + trig_two)/2", &[t1, t2], Some(2.25)),
        (
            "trig_one > 2 ? trig_one + trig_two : 1",
            &[t1, t2],
            Some(1.0),
        ),
        (
            "trig_one > 1 ? trig_one + trig_two : 1",
            &[t1, t2],
            Some(4.5),
        ),
        (
            "min(trig_a, trig_b)",
            &[("trig_a", Some(3.0)), ("trig_b", Some(-2.0))],
            Some(-2.0),
        ),
        (
            "(orders + retries ?? 0) / 2",
            &[("orders", Some(4.0)), ("retries", None)],
            Some(2.0),
        ),
        (
            "q > 10 ? max(q, 20) : float('3')",
            &[("q", Some(11.0))],
            Some(20.0),
        ),
        (
            "q > 10 ? max(q, 20) : float('3')",
            &[("q", Some(1.0))],
            Some(3.0),
        ),
    ];
    for (src, vars, want) in cases {
        assert_eq!(run(src, vars), Ok(*want), "{src}");
    }
}

#[test]
fn precedence_and_associativity() {
    let cases: &[(&str, f64)] = &[
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("100 / 10 / 5", 2.0),
        ("2 ** 3 ** 2", 512.0),
        ("2 ^ 3", 8.0),
        ("-2 ** 2", -4.0),
        ("2 * 3 ** 2", 18.0),
        ("7 % 3", 1.0),
        ("-7 % 3", -1.0),
        ("5 / 2", 2.5),
        ("8 - 2 * 3 + 1", 3.0),
        ("-(1 + 2)", -3.0),
        ("- -3", 3.0),
        ("+3", 3.0),
        ("1 + 2 > 2 ? 10 : 20", 10.0),
        ("true || false && false ? 1 : 0", 1.0),
        ("(true || false) && false ? 1 : 0", 0.0),
        ("true or false and false ? 1 : 0", 1.0),
        ("not true == false ? 1 : 0", 1.0),
        ("!(1 < 2) ? 1 : 0", 0.0),
        ("1 < 2 < 3 ? 1 : 0", 1.0),
        ("3 > 2 > 1 ? 1 : 0", 1.0),
        ("1 < 3 < 2 ? 1 : 0", 0.0),
        ("1 < 2 == true ? 1 : 0", 1.0),
        ("1 + 2 == 3 ? 1 : 0", 1.0),
        ("1 != 1.0 ? 1 : 0", 0.0),
        ("true ? 1 : false ? 2 : 3", 1.0),
        ("false ? 1 : false ? 2 : 3", 3.0),
        ("false ? 1 : true ? 2 : 3", 2.0),
        ("1_000 + 0x10 + 0o10 + 0b10", 1026.0),
        ("1e3 + 2.5e-1 + .5 + 1.", 1001.75),
        ("1E2", 100.0),
        ("let x = 2; x * 3", 6.0),
        ("let x = 2; let y = x + 1; x * y", 6.0),
        ("if 1 > 2 { 1 } else { 2 }", 2.0),
        ("if false { 1 } else if true { 5 } else { 3 }", 5.0),
        ("(1; 2) + 1", 3.0),
        ("false ?: 4", 4.0),
        ("[1, 5, 3] | max()", 5.0),
        ("[1, 2, 3][1] + [1, 2, 3][-1]", 5.0),
        ("2 in [1, 2] ? 1 : 0", 1.0),
        ("3 not in [1, 2] ? 1 : 0", 1.0),
        ("2.0 in [1, 2] ? 1 : 0", 1.0),
        ("'a' + \"b\" == `ab` ? 1 : 0", 1.0),
        ("'b' > 'a' ? 1 : 0", 1.0),
        ("\"3\"", 3.0),
        ("'\\x41\\u00e9\\n' == \"A\u{e9}\\n\" ? 1 : 0", 1.0),
        ("+([1, '3'][1])", 3.0),
        ("1 + /* two */ 2 // the end\n", 3.0),
        ("float(2) // KEDA does not wrap this one", 2.0),
        ("float(2);", 2.0),
        ("1 + 2,", 3.0),
        ("nil == nil ? 1 : 0", 1.0),
        // expr-lang's optimizer folds these without running `n > 1` (nil > int fails).
        ("n > 1 or !false ? 1 : 0", 1.0),
        ("n > 1 and (false and n > 2) ? 1 : 0", 0.0),
        ("nil ?? 4", 4.0),
        ("[1, [2, 3]] == [1, [2, 3]] ? 1 : 0", 1.0),
        ("9223372036854775807 + 1 < 0 ? 1 : 0", 1.0),
    ];
    for (src, want) in cases {
        assert_eq!(run(src, &[("n", None)]), Ok(Some(*want)), "{src}");
    }
}

#[test]
fn builtins() {
    let ab = [("a", Some(3.0)), ("b", Some(1.0))];
    let cases: &[(&str, f64)] = &[
        ("max(1, 5, 3)", 5.0),
        ("max([1, 9], 3)", 9.0),
        ("max(a, b)", 3.0),
        ("min(a, b)", 1.0),
        ("min([4, [2, 8]], 3)", 2.0),
        ("abs(-2.5)", 2.5),
        ("abs(-3)", 3.0),
        ("ceil(1.2)", 2.0),
        ("ceil(3)", 3.0),
        ("floor(1.8)", 1.0),
        ("floor(-1.2)", -2.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(2.4)", 2.0),
        ("float('2.5')", 2.5),
        ("float(2)", 2.0),
        ("int(3.9)", 3.0),
        ("int(-3.9)", -3.0),
        ("int('7')", 7.0),
        ("int(0.0 / 0.0) < 0 ? 1 : 0", 1.0),
        ("int(1e300) == int(-1e300) ? 1 : 0", 1.0),
        ("int(a) % 2", 1.0),
        ("len([1, 2, 3])", 3.0),
        ("len('h\u{e9}llo')", 5.0),
        ("count([1, 2, 3], # > 1)", 2.0),
        ("count([a, b], # > 2)", 1.0),
        ("count([true, false, true])", 2.0),
        ("len(filter([1, 2, 3], {# > 1}))", 2.0),
        ("all([1, 2], # > 0) ? 1 : 0", 1.0),
        ("all([1, 2], # > 1) ? 1 : 0", 0.0),
        ("any([1, 2], # > 1) ? 1 : 0", 1.0),
        ("any([], # > 1) ? 1 : 0", 0.0),
        ("none([1, 2], # > 5) ? 1 : 0", 1.0),
        ("one([1, 2], # > 1) ? 1 : 0", 1.0),
        ("one([1, 2], # > 0) ? 1 : 0", 0.0),
        ("sum([1, 2, 3])", 6.0),
        ("sum([1, 2.5])", 3.5),
        ("sum([1, 2, 3], # * 2)", 12.0),
        ("sum([])", 0.0),
        ("sum(map([1, 2], # * 10))", 30.0),
        ("sum(map([5, 6, 7], #index))", 3.0),
        ("sum(map([5, 6], count([1], # > 0) + #index))", 3.0),
        ("sum(map([1, 2], sum(map([10, 20], #))))", 60.0),
        ("sum(map([1, 2], {let d = # * 2; d + 1}))", 8.0),
        ("mean([1, 2, 3, 4])", 2.5),
        ("mean(1, 2)", 1.5),
        ("mean([])", 0.0),
        ("median([3, 1, 2])", 2.0),
        ("median([4, 1, 3, 2])", 2.5),
        ("max([]) ?? 7", 7.0),
        ("[a, b] | count(# > 2)", 1.0),
        ("filter([a, b], # < 2)[0]", 1.0),
    ];
    for (src, want) in cases {
        assert_eq!(run(src, &ab), Ok(Some(*want)), "{src}");
    }
}

#[test]
fn compile_errors_name_the_position_and_the_fix() {
    let ab = [("a", Some(1.0)), ("b", Some(2.0))];
    let cases: &[(&str, &str)] = &[
        (
            "(a + b",
            "line 1, column 7: `(` at line 1, column 1 is not closed; add `)`",
        ),
        (
            "a + b)",
            "line 1, column 6: unexpected `)` with no opening bracket before it",
        ),
        (
            "max(a, b",
            "line 1, column 9: `(` at line 1, column 4 is not closed; add `)`",
        ),
        (
            "[a, b",
            "line 1, column 6: `[` at line 1, column 1 is not closed; add `]`",
        ),
        (
            "(a + b]",
            "line 1, column 7: unexpected `]`; expected `)` to close the `(` at line 1, column 1",
        ),
        (
            "a +",
            "line 1, column 4: unexpected end of the formula; expected a value",
        ),
        ("a + * b", "line 1, column 5: unexpected `*`"),
        (
            "a b",
            "line 1, column 3: unexpected `b`; expected an operator or the end of the formula",
        ),
        ("1 +\n  )", "line 2, column 3: unexpected `)`"),
        (
            "a ? b",
            "line 1, column 6: unexpected end of the formula; expected `:`",
        ),
        (
            "foo(a)",
            "line 1, column 1: unknown function `foo`; the functions are abs, all",
        ),
        (
            "reduce([a], #)",
            "line 1, column 1: the function `reduce` is not supported",
        ),
        (
            "max()",
            "line 1, column 1: max takes at least 1 argument(s), not 0",
        ),
        ("abs(a, b)", "abs takes 1 argument(s), not 2"),
        ("count()", "count takes 1 or 2 argument(s), not 0"),
        (
            "# > 1",
            "line 1, column 1: `#` is only valid inside a closure",
        ),
        ("map([a], #acc)", "`#acc` is not available here"),
        (
            "sum([a], #index)",
            "line 1, column 10: `#index` is not available here",
        ),
        ("count([a], # > 1; 2)", "wrap the closure in { and }"),
        (
            "a ?? b + 1",
            "line 1, column 8: operator `+` and `??` cannot be mixed",
        ),
        (
            "a.b",
            "line 1, column 2: member access (`.name`); trigger values are numbers is not supported",
        ),
        ("{x: a}", "a map `{...}` is not supported"),
        ("1..3", "the range operator `..` is not supported"),
        (
            "len(b'x')",
            "line 1, column 5: a bytes literal `b'...'` is not supported",
        ),
        ("'a' contains 'b'", "a string operator is not supported"),
        (
            "\"abc",
            "line 1, column 1: string not terminated; close it with \"",
        ),
        ("'a\\qb'", "line 1, column 3: unknown escape sequence"),
        ("12ab", "bad number `12ab`"),
        ("99999999999999999999", "bad number"),
        ("1e999", "bad number"),
        ("1e", "bad number"),
        ("0x", "bad number"),
        ("a @ b", "line 1, column 3: unrecognized character '@'"),
        ("/* x", "comment not closed"),
        ("a; b", "a top-level `;` is refused by KEDA"),
        ("a;", "line 1, column 2: a trailing `;` is refused by KEDA"),
        ("a ?? (b; 1);", "a trailing `;` is refused by KEDA"),
        ("let x = a; x;", "a trailing `;` is refused by KEDA"),
        (
            "a + 1 // one more",
            "line 1, column 7: a `//` comment at the end is refused by KEDA",
        ),
        ("\"\\'\"", "unknown escape sequence"),
        ("'\\\"'", "unknown escape sequence"),
        ("'\\?'", "unknown escape sequence"),
        ("'\\X41'", "unknown escape sequence"),
        ("'\\x+1'", "unknown escape sequence"),
        ("'\\u{+1F600}'", "unknown escape sequence"),
        ("'\\u+041'", "unknown escape sequence"),
        ("'\\18'", "unknown escape sequence"),
        (
            "let a = 1; a",
            "line 1, column 5: `a` is already a name here",
        ),
        ("let max = 1; max", "`max` is already a name here"),
        (
            "let x = 1; let x = 2; x",
            "line 1, column 16: `x` is already a name here",
        ),
        (
            "a ?? (let _kedaCompositeResult = 1; _kedaCompositeResult)",
            "already a name",
        ),
        ("let = 1; a", "expected a name after `let`"),
        ("if a { b }", "expected `else`"),
        ("a[1:2]", "a slice is not supported"),
        ("", "unexpected end of the formula"),
    ];
    for (src, want) in cases {
        let got = error(src, &ab);
        assert!(got.contains(want), "{src}: {got}");
    }
    // `??` formulas are wrapped in parentheses by KEDA, where a sequence parses.
    assert_eq!(run("a ?? (b; 5)", &ab), Ok(Some(1.0)));
}

#[test]
fn unknown_names_are_listed_with_the_known_ones() {
    let err = compile("queues * 2 + other + queues", &["queue", "api"]);
    let Err(FormulaError::UnknownNames { at, names, known }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!((at.line, at.column), (1, 1));
    assert_eq!(names, &["queues", "other"]);
    assert_eq!(known, &["queue", "api"]);
    let message = err.map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        message,
        "line 1, column 1: unknown names queues, other; the known names are: queue, api"
    );
    // Builtins, `let` and closure locals are not variables; a builtin name is not a value.
    assert!(compile("let x = 1; max(x, count([1], # > 0))", &[]).is_ok());
    assert!(matches!(
        compile("max + 1", &[]),
        Err(FormulaError::UnknownNames { .. })
    ));
    assert!(matches!(
        compile("(let y = 1; y) + y", &[]),
        Err(FormulaError::UnknownNames { .. })
    ));
}

/// A compiled formula can be cached and shared across the operator's tasks.
#[test]
fn formula_is_send_and_sync() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<super::Formula>();
    shared::<FormulaError>();
    shared::<super::EvalError>();
}

#[test]
fn free_variables_in_order_of_first_use() {
    let formula = compile("b + a * b ?? max(c, a)", &["a", "b", "c", "d"]);
    let Ok(formula) = formula else {
        panic!("{formula:?}");
    };
    assert_eq!(
        formula.free_variables().collect::<Vec<_>>(),
        ["b", "a", "c"]
    );
    assert_eq!(formula.variables(), ["a", "b", "c", "d"]);
}

#[test]
fn eval_errors() {
    let a = [("a", Some(1.0)), ("n", None)];
    let cases: &[(&str, &str)] = &[
        (
            "a && true ? 1 : 0",
            "line 1, column 3: `&&`/`and` needs a bool, not float",
        ),
        (
            "a ? 1 : 0",
            "line 1, column 1: the condition of `?:` or `if` needs a bool, not float",
        ),
        ("!a ? 1 : 0", "invalid operation: !float"),
        ("a % 2", "line 1, column 3: invalid operation: float % int"),
        ("int(a) % 0", "integer divide by zero"),
        ("a + 'x'", "invalid operation: float + string"),
        ("a < 'x' ? 1 : 0", "invalid operation: float < string"),
        ("a > 0", "the formula evaluated to a bool, not a number"),
        ("[a]", "the formula evaluated to a array, not a number"),
        ("'x'", "invalid operation: float(\"x\")"),
        ("int('1.5')", "invalid operation: int(\"1.5\")"),
        ("n", "the formula evaluated to nil"),
        ("n + 1", "invalid operation: nil + int"),
        ("max(n, 1)", "invalid argument for max (type nil)"),
        ("[1][5]", "index 5 out of range (array length is 1)"),
        ("count(a, # > 1)", "invalid argument for count (type float)"),
        ("count([1], #)", "needs a bool, not int"),
        ("len(a)", "invalid argument for len (type float)"),
    ];
    for (src, want) in cases {
        let got = error(src, &a);
        assert!(got.contains(want), "{src}: {got}");
    }
    // A nil result passes only through KEDA's `??` wrapper, for the fallback to replace it.
    assert_eq!(run("n ?? n", &a), Ok(None));
    assert_eq!(run("max(n)", &a).map_err(|_| ()), Err(()));
    let values = HashMap::from([("a", 2.0)]);
    let formula = compile("a * 2 + (n ?? 1)", &["a", "n"]);
    assert_eq!(formula.map(|f| f.eval_map(&values)), Ok(Ok(Some(5.0))));
}

/// Errors KEDA's type checker finds on a branch no run takes (triggers are float64 there).
#[test]
fn type_errors_are_found_without_running() {
    let cases: &[(&str, &str)] = &[
        (
            "a > 5 ? a && true : 1",
            "line 1, column 11: `&&`/`and` needs a bool, not float",
        ),
        (
            "a > 5 ? a % 2 : 1",
            "line 1, column 11: invalid operation: float % int; `%` takes ints, e.g. int(a) % 2",
        ),
        ("a > 5 ? 'x' - 1 : 1", "invalid operation: string - int"),
        (
            "a > 5 ? float(true) : 1",
            "invalid argument for float (type bool)",
        ),
        (
            "a > 5 ? count(a, # > 1) : 1",
            "invalid argument for count (type float)",
        ),
        (
            "a > 5 ? (a ? 1 : 2) : 1",
            "line 1, column 10: the condition of `?:` or `if` needs a bool",
        ),
        ("a > 5 ? -true : 1", "invalid operation: -bool"),
        ("a > 5 ? 2 ** 'x' : 1", "invalid operation: int ** string"),
        (
            "a > 5 ? max(a, 'x') : 1",
            "invalid argument for max (type string)",
        ),
        (
            "a > 5 ? all([a], 1 + 1) : 1",
            "the closure of a predicate builtin needs a bool, not",
        ),
        ("a > 5 ? len(3) : 1", "invalid argument for len (type int)"),
        ("a > 5 ? 1 < 'x' : 1", "invalid operation: int < string"),
        ("a > 5 ? a in 3 : 1", "invalid operation: float in int"),
        ("a > 5 ? a[0] : 1", "invalid operation: float [] int"),
        (
            "let x = a; x > 5 ? x && x : 1",
            "`&&`/`and` needs a bool, not float",
        ),
        ("(a < 5) == (1 > a)", "the formula evaluated to a bool"),
        ("a > 5 ? nil * a : 1", "invalid operation: nil * float"),
        (
            "a > 5 ? (nil ? 1 : 2) : 1",
            "the condition of `?:` or `if` needs a bool, not nil",
        ),
        ("a > 5 ? 'x' == a : 1", "invalid operation: string == float"),
        ("a > 5 ? a != [a] : 1", "invalid operation: float != array"),
        (
            "a > 5 ? 'a' in 'abc' : 1",
            "invalid operation: string in string",
        ),
        (
            "a > 5 ? abs(nil) : 1",
            "invalid argument for abs (type nil)",
        ),
        ("sum([a], # > 0)", "the formula evaluated to a bool"),
        ("nil", "the formula evaluated to nil"),
        (
            "count([a], #) > 0 ? 1 : 0",
            "the closure of a predicate builtin needs a bool, not float",
        ),
        ("+(['3'][0])", "invalid operation: +string"),
        (
            "a > 5 ? count([a, a], # && true) : 1",
            "`&&`/`and` needs a bool, not float",
        ),
        (
            "a > 5 ? [a][0] && true : 1",
            "`&&`/`and` needs a bool, not float",
        ),
        (
            "a > 5 ? true in [a, 2.5] : 1",
            "invalid operation: bool in array",
        ),
        (
            "a > 5 ? map([1, 2], # > 0)[0] + 1 : 1",
            "invalid operation: bool + int",
        ),
        (
            "a < 5 == 1 > a",
            "line 1, column 7: invalid operation: bool == int",
        ),
    ];
    for (src, want) in cases {
        let err = compile(src, &["a"]);
        let Err(FormulaError::Type { .. } | FormulaError::Syntax { .. }) = &err else {
            panic!("{src}: {err:?}");
        };
        let got = err.map(|_| ()).unwrap_err().to_string();
        assert!(got.contains(want), "{src}: {got}");
    }
    // What needs finer types than these passes to the run: closure elements, `??`, `max`.
    for src in [
        "a > 5 ? int(a) % 2 : 1",
        "nil == a ? 1 : 0",
        "nil in [a] ? 1 : 0",
        "1 == 1.5 ? 1 : 0",
        "max(a, 1) % 2",
        "(a ?? 1) + 1",
        "a > 5 ? nil : 1",
        "[a][0] + 1",
        "count([a, 'x'], # == 1) > 0 ? 1 : 0",
        "count([], #) > 0 ? 1 : 0",
    ] {
        assert!(compile(src, &["a"]).is_ok(), "{src}");
    }
}

fn terms(n: usize) -> String {
    vec!["a"; n].join(" + ")
}

#[test]
fn long_formulas_compile_in_linear_time() {
    // The old free-variable scan took 36 s on this (issue: quadratic admission webhook).
    let unbounded = Limits {
        max_nodes: usize::MAX,
        ..Limits::default()
    };
    let formula = compile_with(&terms(40_000), &["a"], &unbounded);
    assert_eq!(
        formula.map(|f| f.eval(&[Some(1.0)])),
        Ok(Ok(Some(40_000.0)))
    );
    // KEDA (expr-lang) counts `float(...)` too: 5,000 terms are 10,000 nodes, its limit.
    assert!(compile(&terms(5_000), &["a"]).is_ok());
    let err = compile(&terms(5_001), &["a"]);
    assert!(
        matches!(
            &err,
            Err(FormulaError::Syntax {
                error: SyntaxError::TooManyNodes { max: 10_000 },
                ..
            })
        ),
        "{err:?}"
    );
    assert!(matches!(
        compile(&terms(40_000), &["a"]),
        Err(FormulaError::Syntax { .. })
    ));
    let long = format!("a{}", " ".repeat(256 << 10));
    assert!(matches!(
        compile(&long, &["a"]),
        Err(FormulaError::TooLong { .. })
    ));
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // 100,000 levels, or as many as fit the length limit.
    let deep = |open: &str, mid: &str, close: &str| {
        let n = 100_000.min(250_000 / (open.len() + close.len()));
        format!("{}{mid}{}", open.repeat(n), close.repeat(n))
    };
    for src in [
        deep("(", "a", ")"),
        deep("(", "", ""),
        deep("[", "a", "]"),
        deep("-", "a", ""),
        deep("!", "a", ""),
        deep("not ", "a", ""),
        deep("a ** ", "a", ""),
        deep("abs(", "a", ")"),
        deep("a ? a : ", "a", ""),
        deep("if a { a } else ", "{ a }", ""),
        deep("map([a], ", "#", ")"),
        deep("a[", "0", "]"),
    ] {
        let err = compile(&src, &["a"]);
        let Err(FormulaError::Syntax { error, .. }) = &err else {
            panic!("{}: {err:?}", &src[..20]);
        };
        assert_eq!(*error, SyntaxError::TooDeep { max: 64 }, "{}", &src[..20]);
    }
    let lets: String = (0..10_000).map(|i| format!("let x{i} = 1; ")).collect();
    let err = compile(&format!("{lets} a"), &["a"]);
    assert!(
        matches!(
            &err,
            Err(FormulaError::Syntax {
                error: SyntaxError::TooDeep { max: 64 },
                ..
            })
        ),
        "{err:?}"
    );
    let nested = format!("{}a{}", "(".repeat(64), ")".repeat(64));
    assert!(compile(&nested, &["a"]).is_ok());
    // The deepest recursion the limit allows: every level climbs all the precedences.
    let mut worst = "a".to_owned();
    for _ in 0..31 {
        worst = format!("(a || a && a == a + a * a ** {worst} ?? a)");
    }
    // It parses (its types are wrong, which the checker reports without recursing deeper).
    let formula = compile(&worst, &["a"]);
    assert!(
        matches!(formula, Err(FormulaError::Type { .. })),
        "{formula:?}"
    );
    let mut worst = "a".to_owned();
    for _ in 0..31 {
        worst = format!("(a - a + a * -{worst})");
    }
    assert_eq!(run(&worst, &[("a", Some(1.0))]), Ok(Some(-1.0)));
}

#[test]
fn evaluation_is_bounded() {
    // 10^6 closure iterations from a short formula.
    let ten = "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]";
    let mut src = "1".to_owned();
    for _ in 0..6 {
        src = format!("sum(map({ten}, {src}))");
    }
    let err = error(&src, &[]);
    assert!(err.contains("more than 1000000 evaluation steps"), "{err}");
    // A string doubled 64 times.
    let doubling: String = (1..=60)
        .map(|i| format!("let s{i} = s{} + s{0}; ", i - 1))
        .collect();
    let doubled = format!("let s0 = 'xxxxxxxx'; {doubling} len(s60)");
    let err = error(&doubled, &[]);
    assert!(err.contains("evaluation steps"), "{err}");
    // A long string compared once per element: string work is charged by length.
    let ones = vec!["1"; 1_000].join(", ");
    let text = "x".repeat(200_000);
    let src = format!("let s = '{text}'; sum(map([{ones}], s == s ? 1 : 0))");
    let err = error(&src, &[]);
    assert!(err.contains("evaluation steps"), "{err}");
    // An array nested 60 levels, each level twice the one below, flattened by max.
    let mut nest = "let v0 = [1, 2]; ".to_owned();
    nest += &(1..=60)
        .map(|i| format!("let v{i} = [v{}, v{0}]; ", i - 1))
        .collect::<String>();
    let err = error(&format!("{nest} max(v60)"), &[]);
    assert!(err.contains("evaluation steps"), "{err}");
}

/// A deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize
    }
}

#[test]
fn mutated_formulas_never_panic() {
    let seeds = [
        "(a + b) / 2",
        "a > 2 ? a + b : 1",
        "a ?? b ?? 5",
        "count([a, b], {# > 1}) > 1 ? 5 : 0",
        "let x = a * 2; if x > 1 { max(x, b) } else { min([a, b]) }",
        "sum(map([a, b], # ** 2)) % 3 + int('4') - 0x1F + 1_0.5e-1",
        "'it\\'s' + \"\\u{1F600}\" + `raw`",
        "[a, b] | filter(# not in [1]) | len()",
    ];
    let alphabet: Vec<char> = "()[]{}#?:.,;!=<>&|+-*/%^'\"`\\ab01e_x \n\u{e9}\u{1F600}"
        .chars()
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = [Some(1.0), None];
    for round in 0..20_000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..1 + rng.next() % 4 {
            let at = rng.next() % (chars.len() + 1);
            let c = alphabet[rng.next() % alphabet.len()];
            match rng.next() % 3 {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => chars[at] = c,
                _ => chars.push(c),
            }
        }
        let src: String = chars.into_iter().collect();
        if let Ok(formula) = compile(&src, &["a", "b"]) {
            let _ = formula.eval(&values);
            let _ = formula.eval(&[Some(-1.0), Some(-1.0)]);
        }
    }
    // Raw bytes, valid UTF-8 or not.
    for _ in 0..5_000 {
        let bytes: Vec<u8> = (0..rng.next() % 24).map(|_| rng.next() as u8).collect();
        let src = String::from_utf8_lossy(&bytes);
        if let Ok(formula) = compile(&src, &["a"]) {
            let _ = formula.eval(&[Some(1.0)]);
        }
    }
}

/// `cargo test -p swell-api --lib formula::tests::compile_timing -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn compile_timing() {
    let unbounded = Limits {
        max_nodes: usize::MAX,
        max_len: usize::MAX,
        ..Limits::default()
    };
    for n in [20_000, 40_000] {
        // Distinct names: the old scan was quadratic in them.
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let vars: Vec<&str> = names.iter().map(String::as_str).collect();
        let src = vars.join(" + ");
        let start = std::time::Instant::now();
        let compiled = compile_with(&src, &vars, &unbounded);
        let compile_time = start.elapsed();
        let start = std::time::Instant::now();
        let refused = compile(&src, &vars).is_err();
        let default_time = start.elapsed();
        let values = vec![Some(1.0); n];
        let start = std::time::Instant::now();
        let sum = compiled.map(|f| f.eval(&values));
        println!(
            "{n} terms ({} bytes): compile {compile_time:?}, eval {:?} = {sum:?}; default limits refuse: {refused} in {default_time:?}",
            src.len(),
            start.elapsed()
        );
    }
}
