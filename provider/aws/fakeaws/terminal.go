package fakeaws

// The ECS Exec agent's terminal and command: the emulated pseudo-terminal's
// line discipline (echo, "\r" as "\n", Ctrl-D, Ctrl-C, "\n" out as
// "\r\n") and the tiny interpreter that stands in for processes (see
// exec.go's description).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alphaswarm/controller/provider/aws/ssmsession"
)

// terminal is the emulated pseudo-terminal's line discipline.
type terminal struct {
	mu         sync.Mutex
	line       []byte
	cols, rows int
	lines      chan []byte // a nil element is end of file
	intr       chan struct{}
}

func newTerminal() *terminal {
	return &terminal{cols: 80, rows: 24, lines: make(chan []byte, 256), intr: make(chan struct{}, 1)}
}

func (t *terminal) resize(cols, rows int) {
	t.mu.Lock()
	t.cols, t.rows = cols, rows
	t.mu.Unlock()
}

func (t *terminal) size() (cols, rows int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cols, t.rows
}

func (t *terminal) interrupt() {
	select {
	case t.intr <- struct{}{}:
	default:
	}
}

// input applies canonical-mode processing: echo, ICRNL, erase, ^C, ^D.
// echo is called before a completed line is handed to the program.
func (t *terminal) input(b []byte, echo func([]byte)) {
	var out []byte
	flush := func() {
		if len(out) > 0 {
			echo(out)
			out = nil
		}
	}
	deliver := func(line []byte) {
		flush()
		select {
		case t.lines <- line:
		default: // the program is not reading: the input is lost, as when a terminal's buffer is full
		}
	}
	for _, c := range b {
		switch c {
		case 3: // ^C
			out = append(out, "^C\r\n"...)
			t.line = nil
			flush()
			t.interrupt()
		case 4: // ^D: end of file at the start of a line, else the partial line
			line := t.line
			t.line = nil
			if len(line) == 0 {
				line = nil
			}
			deliver(line)
		case '\r', '\n':
			out = append(out, '\r', '\n')
			line := append(t.line, '\n')
			t.line = nil
			deliver(line)
		case 0x7f, 8:
			if len(t.line) > 0 {
				t.line = t.line[:len(t.line)-1]
				out = append(out, "\b \b"...)
			}
		default:
			t.line = append(t.line, c)
			out = append(out, c)
		}
	}
	flush()
}

var (
	errInterrupted = errors.New("interrupted")
	errHangup      = errors.New("hang-up")
)

// readLine returns the next line (or partial line at ^D), io.EOF, or an
// interruption.
func (t *terminal) readLine(ctx context.Context) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, errHangup
	case <-t.intr:
		return nil, errInterrupted
	case l := <-t.lines:
		if l == nil {
			return nil, io.EOF
		}
		return l, nil
	}
}

// program is the fake's command interpreter.
type program struct {
	a    *agent
	ctx  context.Context
	term *terminal
	env  map[string]string
}

// onlcr is the terminal's output translation.
func onlcr(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func (p *program) stdout(s string) { p.a.emit(p.ctx, ssmsession.PayloadOutput, onlcr(s)) }

func (p *program) stderr(s string) {
	if p.a.opts.SendExitCode {
		p.a.emit(p.ctx, ssmsession.PayloadStdErr, onlcr(s))
		return
	}
	p.stdout(s)
}

func exitFor(err error) int {
	if errors.Is(err, errInterrupted) {
		return 130
	}
	return 129 // hang-up
}

// run runs one command and returns its exit code.
func (p *program) run(args []string) int {
	switch args[0] {
	case "echo":
		p.stdout(strings.Join(args[1:], " ") + "\n")
		return 0
	case "true":
		return 0
	case "false":
		return 1
	case "cat":
		if len(args) > 1 {
			p.stderr("cat: " + args[1] + ": No such file or directory\n")
			return 1
		}
		for {
			l, err := p.term.readLine(p.ctx)
			if err == io.EOF {
				return 0
			}
			if err != nil {
				return exitFor(err)
			}
			p.stdout(string(l))
		}
	case "printenv":
		if len(args) == 1 {
			var b strings.Builder
			keys := make([]string, 0, len(p.env))
			for k := range p.env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b.WriteString(k + "=" + p.env[k] + "\n")
			}
			p.stdout(b.String())
			return 0
		}
		code := 0
		for _, k := range args[1:] {
			if v, ok := p.env[k]; ok {
				p.stdout(v + "\n")
			} else {
				code = 1
			}
		}
		return code
	case "stty":
		if len(args) == 2 && args[1] == "size" {
			cols, rows := p.term.size()
			p.stdout(fmt.Sprintf("%d %d\n", rows, cols))
			return 0
		}
		p.stderr("stty: only 'stty size' is emulated\n")
		return 1
	case "sleep":
		secs, err := strconv.ParseFloat(strings.Join(args[1:], ""), 64)
		if len(args) != 2 || err != nil {
			p.stderr("sleep: invalid time interval\n")
			return 1
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			return 0
		case <-p.term.intr:
			return 130
		case <-p.ctx.Done():
			return 129
		}
	case "sh":
		switch {
		case len(args) >= 3 && args[1] == "-c":
			code, _ := p.script(args[2], 0)
			return code
		case len(args) == 1:
			return p.interactive()
		}
		p.stderr("sh: only 'sh' and 'sh -c script' are emulated\n")
		return 2
	}
	p.stderr(fmt.Sprintf("exec: %q: executable file not found in $PATH\n", args[0]))
	return 127
}

// interactive is sh reading commands from the terminal.
func (p *program) interactive() int {
	last := 0
	for {
		p.stdout("$ ")
		l, err := p.term.readLine(p.ctx)
		switch {
		case err == io.EOF:
			return last
		case errors.Is(err, errInterrupted):
			last = 130
			continue
		case err != nil:
			return exitFor(err)
		}
		code, exited := p.script(string(l), last)
		if exited {
			return code
		}
		last = code
	}
}

// script runs statements separated by ";" or newlines; exited reports an
// exit statement.
func (p *program) script(src string, last int) (code int, exited bool) {
	code = last
	for _, stmt := range splitStatements(src) {
		words, err := splitWords(stmt)
		if err != nil {
			p.stderr("sh: syntax error: " + err.Error() + "\n")
			return 2, false
		}
		if len(words) == 0 {
			continue
		}
		if words[0] == "exit" {
			if len(words) > 1 {
				n, err := strconv.Atoi(words[1])
				if err != nil {
					p.stderr("sh: exit: illegal number: " + words[1] + "\n")
					return 2, true
				}
				code = n & 0xff
			}
			return code, true
		}
		code = p.run(words)
	}
	return code, false
}

// splitStatements splits at ";" and newlines outside quotes.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && quote != '\'':
			escaped = true
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == ';' || r == '\n':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

// splitWords splits a command line the way google/shlex does (the SSM
// agent's splitter in container mode): whitespace separates words; '...'
// is literal; "..." allows backslash escapes; a backslash outside quotes
// escapes the next character; # at the start of a word starts a comment
// to the end of the line.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur []rune
	inWord := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			if inWord {
				words = append(words, string(cur))
				cur, inWord = nil, false
			}
		case r == '#' && !inWord:
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("EOF found after escape character")
			}
			i++
			cur, inWord = append(cur, rs[i]), true
		case r == '\'':
			inWord = true
			for i++; ; i++ {
				if i >= len(rs) {
					return nil, errors.New("EOF found when expecting closing quote")
				}
				if rs[i] == '\'' {
					break
				}
				cur = append(cur, rs[i])
			}
		case r == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(rs) {
					return nil, errors.New("EOF found when expecting closing quote")
				}
				if rs[i] == '"' {
					break
				}
				if rs[i] == '\\' {
					if i+1 >= len(rs) {
						return nil, errors.New("EOF found after escape character")
					}
					i++
				}
				cur = append(cur, rs[i])
			}
		default:
			cur, inWord = append(cur, r), true
		}
	}
	if inWord {
		words = append(words, string(cur))
	}
	return words, nil
}
