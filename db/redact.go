package db

import "strings"

// redactSQL replaces every quoted string literal in an interpolated SQL statement by '?', so
// that values such as password or token hashes never reach a log line. The glebarez dialector
// quotes string values with double quotes, standard SQL with single quotes; both are redacted
// (identifiers are backquoted by GORM, so they are kept). Numbers are kept: they are ids and
// counts, useful when reading a slow-query log.
func redactSQL(sql string) string {
	if !strings.ContainsAny(sql, `'"`) {
		return sql
	}
	var b strings.Builder
	b.Grow(len(sql))
	in := byte(0)
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case in == 0 && (c == '\'' || c == '"'):
			in = c
			b.WriteString("'?'")
		case in != 0 && c == in:
			if i+1 < len(sql) && sql[i+1] == in { // doubled quote inside the literal
				i++
				continue
			}
			in = 0
		case in == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}
