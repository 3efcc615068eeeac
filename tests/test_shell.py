"""The persistent shell in a real container and on the host: status, output, timeouts, caps, odd input."""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator

import pytest

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.docker_shell import DockerExecChannel
from atlas_agent.runtime.local_workspace import LocalProcessChannel, shell_environment
from atlas_agent.runtime.shell import PersistentShell, ShellDied

CAP = 100_000


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def shell(request: pytest.FixtureRequest) -> Iterator[PersistentShell]:
    """A fresh session per test, so no test sees another's cwd or variables: in a container, or a
    bash on this machine (the local runtime)."""
    if request.param == "docker":
        container = request.getfixturevalue("container")
        channel: DockerExecChannel | LocalProcessChannel = DockerExecChannel(
            request.getfixturevalue("docker_client"), container.id
        )
    else:
        channel = LocalProcessChannel("/", shell_environment())
    session = PersistentShell(channel, workdir="/", max_output_bytes=CAP)
    session.start()
    yield session
    session.close()
    if isinstance(channel, LocalProcessChannel):
        channel.kill_group()  # the background jobs some tests leave


# Command lines of the processes in the shell's own session: on a host, other programs may run the
# same commands. Read from /proc, as images need not have procps.
_SESSION_PROCESSES = r"""
session() { local line; read -r line <"$1/stat" 2>/dev/null && set -- ${line##*) } && echo "$4"; }
mine=$(session /proc/$$)
for d in /proc/[0-9]*; do
  [ "$(session "$d")" = "$mine" ] && tr '\0' ' ' <"$d/cmdline" 2>/dev/null && echo
done
"""


def processes(shell: PersistentShell, needle: str) -> list[str]:
    """Command lines in the shell's session that contain `needle`."""
    listing = shell.run(_SESSION_PROCESSES).output
    return [line for line in listing.splitlines() if needle in line and "/proc/" not in line]


@pytest.mark.parametrize(
    ("command", "status"), [("true", 0), ("false", 1), ("(exit 42)", 42), ("sh -c 'exit 1'", 1), ("exit 0", 0)]
)
def test_exit_status(shell: PersistentShell, command: str, status: int) -> None:
    assert shell.run(command).exit_code == status
    assert shell.run("echo ok").output == "ok\n"


def test_exit_ends_the_shell_and_a_fresh_one_takes_over(shell: PersistentShell) -> None:
    shell.run("cd /tmp")
    result = shell.run("exit 42")
    assert result.exit_code == 42 and "fresh shell" in result.output
    assert shell.run("pwd").output == "/tmp\n"


def test_stderr_is_captured_in_order(shell: PersistentShell) -> None:
    result = shell.run("echo one; echo two >&2; echo three; ls /nonexistent")
    assert result.output.startswith("one\ntwo\nthree\n")
    assert "No such file or directory" in result.output
    assert result.exit_code == 2


def test_output_without_trailing_newline_is_kept_exactly(shell: PersistentShell) -> None:
    assert shell.run("printf abc").output == "abc"
    assert shell.run("printf 'abc\\n\\n'").output == "abc\n\n"
    assert shell.run("true").output == ""


def test_cd_export_and_functions_persist(shell: PersistentShell) -> None:
    shell.run("cd /tmp")
    shell.run("export FOO=bar; greet() { echo hi $1; }; declare -a ARR=(x y)")
    result = shell.run('pwd; echo $FOO; greet you; echo "${ARR[1]}"')
    assert result.output == "/tmp\nbar\nhi you\ny\n"
    assert shell.cwd == "/tmp"


def test_a_local_shell_is_interruptible_when_atlas_ignores_sigint() -> None:
    """Started in the background (`&`, nohup), Atlas inherits SIGINT ignored; its shells must not."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        shell = PersistentShell(LocalProcessChannel("/", shell_environment()), workdir="/tmp")
        shell.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        result = shell.run("sleep 30; echo not reached", timeout=1)
        assert result.timed_out and "not reached" not in result.output
    finally:
        shell.close()


def test_timeout_kills_the_command_and_keeps_the_session(shell: PersistentShell) -> None:
    shell.run("cd /tmp; export FOO=bar")
    started = time.monotonic()
    result = shell.run("sleep 30; echo not reached", timeout=1)
    assert time.monotonic() - started < 3
    assert result.timed_out and result.exit_code == 137
    assert "not reached" not in result.output and "timed out" in result.output
    assert not processes(shell, "sleep 30")
    assert shell.run("echo ok; pwd; echo $FOO").output == "ok\n/tmp\nbar\n"


def test_timeout_kills_the_whole_process_tree(shell: PersistentShell) -> None:
    result = shell.run("bash -c 'sleep 31 & sleep 32 | cat -n; wait'; echo not reached", timeout=1)
    assert result.timed_out and "not reached" not in result.output
    assert not processes(shell, "sleep 3") and not processes(shell, "cat -n")
    assert shell.run("echo ok").output == "ok\n"


def test_builtin_loop_is_interrupted_without_losing_the_session(shell: PersistentShell) -> None:
    shell.run("cd /tmp; export FOO=bar")
    # After a child was killed bash needs a fork before it can trap SIGINT again: cover that path.
    assert shell.run("sleep 30", timeout=1).timed_out
    started = time.monotonic()
    result = shell.run("while true; do :; done", timeout=1)
    assert result.timed_out and time.monotonic() - started < 3
    assert shell.run("pwd; echo $FOO").output == "/tmp\nbar\n"


def test_a_process_that_left_the_command_tree_is_stopped_when_the_command_times_out(shell: PersistentShell) -> None:
    """A double fork orphans `sleep 4321`: no walk down from the shell finds it, yet it must not outlive
    the command (in a container it might be a fork bomb's; on the host, the session still holds it)."""
    shell.run("cd /tmp")
    result = shell.run("(sleep 4321 &); sleep 60", timeout=1)
    assert result.timed_out and "escaped the command" in result.output, result.output
    everywhere = shell.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").output
    assert "sleep 4321" not in everywhere
    assert shell.run("pwd").output == "/tmp\n"


def test_uninterruptible_loop_restarts_the_session_in_the_same_directory(shell: PersistentShell) -> None:
    shell.run("cd /tmp; export FOO=bar")
    old_pid = shell.pid
    result = shell.run("trap '' INT; while true; do :; done", timeout=1)
    assert result.timed_out and result.exit_code == 137
    assert "fresh shell" in result.output
    assert shell.pid != old_pid
    assert shell.run("pwd; echo ${FOO:-unset}").output == "/tmp\nunset\n"
    assert shell.run(f"test -e /proc/{old_pid}").exit_code == 1  # the old shell is gone


def test_large_output_is_capped_while_streaming(shell: PersistentShell) -> None:
    result = shell.run("head -c 10000000 /dev/zero | tr '\\0' a; echo; echo END")
    assert result.exit_code == 0 and result.truncated
    assert result.total_bytes == 10_000_000 + len("\nEND\n")
    assert CAP <= len(result.output) <= CAP + 100
    assert result.output.startswith("a" * 1000) and result.output.endswith("a\nEND\n")
    assert "bytes elided" in result.output


def test_exact_cap_is_not_truncated(shell: PersistentShell) -> None:
    result = shell.run(f"head -c {CAP} /dev/zero | tr '\\0' b")
    assert not result.truncated and result.output == "b" * CAP and result.total_bytes == CAP


def test_binary_output_does_not_break_the_session(shell: PersistentShell) -> None:
    result = shell.run("head -c 4096 /dev/urandom; printf '\\0\\377\\n'")
    assert result.exit_code == 0 and result.total_bytes == 4096 + 3
    assert shell.run("echo ok").output == "ok\n"


def test_stdin_readers_return_at_once(shell: PersistentShell) -> None:
    started = time.monotonic()
    result = shell.run("cat; read line; echo read=$?; python3 -c 'import sys; print(len(sys.stdin.read()))'")
    assert result.output == "read=1\n0\n"
    assert time.monotonic() - started < 2


def test_syntax_error_fails_only_that_command(shell: PersistentShell) -> None:
    result = shell.run('echo "unclosed')
    assert result.exit_code != 0 and "unexpected EOF" in result.output
    assert shell.run("if then fi").exit_code != 0
    assert shell.run("echo ok").output == "ok\n"


def test_multiline_script_with_heredoc(shell: PersistentShell) -> None:
    script = (
        "cat > /tmp/greet.py <<'EOF'\n"
        "import sys\n"
        "print('hello', sys.argv[1])\n"
        "EOF\n"
        "for name in ann bob; do\n"
        "  python3 /tmp/greet.py $name\n"
        "done\n"
    )
    assert shell.run(script).output == "hello ann\nhello bob\n"


def test_quotes_backslashes_and_unicode_arrive_intact(shell: PersistentShell) -> None:
    text = "a'b\"c\\d\te $HOME `x` é✓"
    result = shell.run("printf '%s\\n' " + "'" + text.replace("'", "'\\''") + "'")
    assert result.output == text + "\n"


def test_background_jobs_do_not_block_the_command(shell: PersistentShell) -> None:
    started = time.monotonic()
    assert shell.run("sleep 100 & echo started").output == "started\n"
    assert time.monotonic() - started < 2
    assert processes(shell, "sleep 100")  # it runs on, in the background


@pytest.mark.docker
def test_dead_container_raises_shell_died(docker_client, base_image: str) -> None:
    with TaskContainer(docker_client, base_image, run_id="test-shell", instance_id="dies") as doomed:
        docker_client.api.kill(doomed.id)
        with pytest.raises(ShellDied, match="stopped"):
            doomed.run("echo hi")


def test_large_command_text_arrives_intact(shell: PersistentShell) -> None:
    body = "\n".join(f"line {i} 'single' \"double\" \\ $HOME é" for i in range(10_000))
    result = shell.run(f"cat > /tmp/big.txt <<'EOF'\n{body}\nEOF\nsha256sum < /tmp/big.txt")
    assert result.output.split()[0] == hashlib.sha256((body + "\n").encode()).hexdigest()
