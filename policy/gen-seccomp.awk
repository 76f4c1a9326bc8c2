# gen-seccomp.awk — turns policy/seccomp.allow into build/gen/seccomp_allow.h.
#
#   awk -f policy/gen-seccomp.awk policy/seccomp.allow > build/gen/seccomp_allow.h
#
# Runs at build time; trusts its input only as far as checking it: any line it
# cannot read exactly fails the build with "file:line: reason". Syscall names
# become SCMP_SYS(name), so a name libseccomp does not know fails the compile of
# worker/confine.c. Constants (PROT_EXEC, CLONE_VM|CLONE_FS, AF_UNIX, EACCES)
# are copied into the C table as they are written and resolved by the compiler.

function fail(msg) {
	printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
	failed = 1
	exit 1
}

# A constant as written (no spaces; parts joined by '|' may be @define names),
# or $PID.
function value(tok,    np, parts, j, out) {
	if (tok == "$PID")
		return "$PID"
	if (tok !~ /^[A-Za-z0-9_|~]+$/)
		fail("bad constant '" tok "'")
	np = split(tok, parts, "|")
	out = ""
	for (j = 1; j <= np; j++) {
		if (parts[j] == "")
			fail("bad constant '" tok "'")
		out = out (j > 1 ? "|" : "") (parts[j] in defs ? defs[parts[j]] : parts[j])
	}
	return "(" out ")"
}

function c_string(s) {
	gsub(/\\/, "\\\\", s)
	gsub(/"/, "\\\"", s)
	return "\"" s "\""
}

BEGIN {
	ops["=="] = "SCMP_CMP_EQ"; ops["!="] = "SCMP_CMP_NE"
	ops["<"] = "SCMP_CMP_LT"; ops["<="] = "SCMP_CMP_LE"
	ops[">"] = "SCMP_CMP_GT"; ops[">="] = "SCMP_CMP_GE"
	nrules = 0; nsys = 0
}

# Comments and blank lines.
/^[ \t]*(#|$)/ { next }

$1 == "@define" {
	if (NF < 3 || $3 ~ /^#/ || $2 !~ /^[A-Z][A-Z0-9_]*$/)
		fail("usage: @define NAME VALUE")
	defs[$2] = value($3)
	next
}

{
	line = $0
	why = ""
	if ((h = index(line, "#")) > 0) {
		why = substr(line, h + 1)
		line = substr(line, 1, h - 1)
		sub(/^[ \t]+/, "", why)
		sub(/[ \t]+$/, "", why)
	}
	if (why == "")
		fail("every rule says who needs it: add '# reason'")
	n = split(line, t, /[ \t]+/)
	if (t[1] == "") {
		for (i = 1; i < n; i++)
			t[i] = t[i + 1]
		n--
	}
	if (t[n] == "")
		n--
	name = t[1]
	if (name !~ /^[a-z_][a-z0-9_]*$/)
		fail("bad syscall name '" name "'")

	action = "SECCOMP_ALLOW_ALLOW"; err = "0"; ncmp = 0; cmps = ""; pidmask = 0
	i = 2
	while (i <= n) {
		if (t[i] == "->") {
			if (t[i + 1] == "allow" && i + 1 == n) {
				action = "SECCOMP_ALLOW_ALLOW"
			} else if (t[i + 1] == "kill" && i + 1 == n) {
				action = "SECCOMP_ALLOW_KILL"
			} else if (t[i + 1] == "errno" && i + 2 == n && t[i + 2] ~ /^E[A-Z0-9]+$/) {
				action = "SECCOMP_ALLOW_ERRNO"; err = t[i + 2]
			} else {
				fail("action is one of: -> allow | -> kill | -> errno ENAME")
			}
			break
		}
		if (t[i] !~ /^arg[0-5]$/)
			fail("expected argN or '->', found '" t[i] "'")
		arg = substr(t[i], 4)
		if (ncmp == 3)
			fail("at most 3 argument filters per line")
		if (t[i + 1] == "&") {
			# argN & MASK == VALUE
			if (t[i + 3] != "==" || i + 4 > n)
				fail("masked filter is: argN & MASK == VALUE")
			mask = value(t[i + 2]); val = value(t[i + 4])
			if (mask == "$PID" || val == "$PID")
				fail("$PID only in a plain comparison")
			cmp = sprintf("{%s, SCMP_CMP_MASKED_EQ, (scmp_datum_t)%s, (scmp_datum_t)%s}",
				      arg, mask, val)
			i += 5
		} else {
			if (!(t[i + 1] in ops) || i + 2 > n)
				fail("filter is: argN OP VALUE (OP: == != < <= > >=) or argN & MASK == VALUE")
			val = value(t[i + 2])
			if (val == "$PID") {
				pidmask += 2 ^ ncmp
				val = "0"
			}
			cmp = sprintf("{%s, %s, (scmp_datum_t)%s, 0}", arg, ops[t[i + 1]], val)
			i += 3
		}
		cmps = cmps (ncmp ? ", " : "") cmp
		ncmp++
	}
	if ((name in act) && act[name] != action)
		fail("'" name "' has rules with different actions: libseccomp cannot load them")
	if (!(name in act))
		nsys++
	act[name] = action
	if (ncmp == 0)
		cmps = "{0}"
	rules[nrules++] = sprintf("\t{\"%s\", SCMP_SYS(%s), %s, %s, %d, {%s}, %du,\n\t %s, %d},",
				  name, name, action, err, ncmp, cmps, pidmask, c_string(why), FNR)
}

END {
	if (failed)
		exit 1
	if (nrules == 0) {
		printf "%s: no rules\n", FILENAME > "/dev/stderr"
		exit 1
	}
	print "/* Generated from policy/seccomp.allow by policy/gen-seccomp.awk: do not edit. */"
	print "#ifndef MOONPEN_SECCOMP_ALLOW_H"
	print "#define MOONPEN_SECCOMP_ALLOW_H"
	print ""
	print "#include <errno.h>"
	print "#include <fcntl.h>"
	print "#include <sched.h>"
	print "#include <signal.h>"
	print "#include <sys/mman.h>"
	print "#include <sys/prctl.h>"
	print "#include <sys/socket.h>"
	print ""
	print "#include <seccomp.h>"
	print ""
	print "enum seccomp_allow_action {"
	print "\tSECCOMP_ALLOW_ALLOW, /* the call runs */"
	print "\tSECCOMP_ALLOW_ERRNO, /* the call fails with err: a soft denial */"
	print "\tSECCOMP_ALLOW_KILL,  /* the kernel kills the process */"
	print "};"
	print ""
	print "struct seccomp_allow_rule {"
	print "\tconst char *name;"
	print "\tint nr; /* SCMP_SYS(name): an unknown name fails the build */"
	print "\tenum seccomp_allow_action action;"
	print "\tint err;"
	print "\tunsigned ncmp;"
	print "\tstruct scmp_arg_cmp cmp[3]; /* all must hold */"
	print "\tunsigned pid_mask; /* bit i: cmp[i] compares with the worker's pid ($PID) */"
	print "\tconst char *why;"
	print "\tint line; /* in policy/seccomp.allow */"
	print "};"
	print ""
	print "static const struct seccomp_allow_rule seccomp_allow_rules[] = {"
	for (i = 0; i < nrules; i++)
		print rules[i]
	print "};"
	print ""
	printf "#define SECCOMP_ALLOW_NRULES %d\n", nrules
	printf "#define SECCOMP_ALLOW_NSYSCALLS %d /* distinct names */\n", nsys
	print ""
	print "#endif"
}
