# tests/expect.sh: sourced by the e2e scripts that check a command's exit
# status and message. The caller sets T (a temporary folder) and fails=0.
#
# expect NAME WANT_RC PATTERN CMD...: exit status WANT_RC ("nz" = non-zero)
# and PATTERN (grep -E) in stderr+stdout; prints ok/FAIL, counts failures.
expect() {
	name=$1 want=$2 pat=$3
	shift 3
	"$@" >"$T/out" 2>&1
	rc=$?
	ok=1
	case $want in nz) [ $rc -ne 0 ] || ok=0 ;; *) [ $rc -eq "$want" ] || ok=0 ;; esac
	grep -Eq -e "$pat" "$T/out" || ok=0
	if [ $ok = 1 ]; then
		echo "ok   $name: $(grep -E -e "$pat" "$T/out" | head -n 1 | cut -c1-200)"
	else
		echo "FAIL $name (exit $rc, want $want, pattern '$pat'):"
		sed 's/^/       /' "$T/out" | tail -n 5
		fails=$((fails + 1))
	fi
}
