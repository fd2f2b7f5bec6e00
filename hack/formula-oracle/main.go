// A KEDA-exact oracle for Swell's formula evaluator (crates/swell-api/src/formula): for each
// JSON line {"f": formula, "names": [...], "values": [number|null, ...]} on stdin it prints
// "kind<TAB>detail", doing what KEDA 2.20 does with expr-lang 1.17.8: castToFloatIfNecessary,
// Compile with every trigger typed float64 (kind "compile"), the webhook's Run at -1
// ("validate"), then Run with the values ("eval" error, "nil", or "value").
//
//	cd hack/formula-oracle && go build -o /tmp/formula-oracle .
//	SWELL_FORMULA_ORACLE=/tmp/formula-oracle cargo test -p swell-api --lib differential -- --ignored --nocapture
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
)

type In struct {
	F      string     `json:"f"`
	Names  []string   `json:"names"`
	Values []*float64 `json:"values"`
}

func cast(formula string) string {
	if strings.Contains(formula, "??") {
		if strings.HasPrefix(formula, "let _kedaCompositeResult = ") {
			return formula
		}
		return fmt.Sprintf("let _kedaCompositeResult = (%s); _kedaCompositeResult == nil ? nil : float(_kedaCompositeResult)", formula)
	}
	if strings.HasPrefix(formula, "float(") {
		return formula
	}
	return "float(" + formula + ")"
}

func clean(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
}

func run(in In) (kind, detail string) {
	defer func() {
		if r := recover(); r != nil {
			kind, detail = "panic", clean(fmt.Sprint(r))
		}
	}()
	env := map[string]float64{}
	for _, n := range in.Names {
		env[n] = -1
	}
	prog, err := expr.Compile(cast(in.F), expr.Env(env))
	if err != nil {
		return "compile", clean(err.Error())
	}
	if _, err := expr.Run(prog, env); err != nil {
		return "validate", clean(err.Error())
	}
	data := map[string]any{}
	for i, n := range in.Names {
		if in.Values[i] == nil {
			data[n] = nil
		} else {
			data[n] = *in.Values[i]
		}
	}
	tmp, err := expr.Run(prog, data)
	if err != nil {
		return "eval", clean(err.Error())
	}
	if tmp == nil {
		return "nil", ""
	}
	v, ok := tmp.(float64)
	if !ok {
		return "eval", fmt.Sprintf("non-float %T", tmp)
	}
	return "value", strconv.FormatFloat(v, 'g', -1, 64)
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		var in In
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			fmt.Fprintf(w, "bad\t%s\n", clean(err.Error()))
			continue
		}
		k, d := run(in)
		fmt.Fprintf(w, "%s\t%s\n", k, d)
	}
	w.Flush()
}
