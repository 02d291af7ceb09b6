"""Evidence → a fix proposal (修正案), pure: no I/O, Japanese and English.

A :class:`Proposal` keeps the facts the investigator gathered (:mod:`rootcause.evidence`) as plain
JSON-able data and renders them, per language, into the three parts of the contract: a one-line
``summary``, the ``evidence`` it rests on and the ``steps`` to take, plus for exceptions an optional
unified-diff sketch against the readable source. Proposals are text: nothing here changes anything.

The steps follow the policy's fix list: exception → handle it where it is called (the frame above the
failing one) and log the full traceback; API timeout → raise the timeout (10 s → 30 s) and retries;
OOM → relieve memory and find the growth; systemd kill → handle SIGTERM within ``TimeoutStopSec``;
second supervisor → one supervisor; other → ``robust_sleep()``, signal handling, KVM/clock checks and
a faulthandler so the next silent death leaves a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Facts = Mapping[str, Any]

_T: dict[str, dict[str, str]] = {
    "en": {
        "unknown": "not known",
        "not_checked": "not checked: {what}",
        # exception / api_timeout
        "s_exception": "{exc} raised at {frame}; handle it in {caller}",
        "s_exception_here": "{exc} raised at {frame}; handle it there",
        "s_exception_noframe": "{exc} ended the process; no frame of the trader's own code in the traceback",
        "e_frame": "failing frame (trader's code): {frame}",
        "e_library": "raised inside a library at {frame}",
        "e_caller": "called from {frame}",
        "e_code": "line: {code}",
        "e_chain": "exception chain: {chain}",
        "e_signature": "signature {sig} ended {n} process(es), first seen {first}",
        "e_source": "source {path} lines {start}-{end} read",
        "e_source_stale": "source {path}:{line} differs from the traceback (the file changed since)",
        "e_source_none": "source {path} not readable here",
        "e_endpoint": "endpoint: {endpoint}",
        "e_timeout_msg": "timeout in the error: {value} s",
        "e_timeout_cfg": "timeout in effect: {key} = {value} (trader config)",
        "e_handled": "handled timeouts in the hour before: {n}",
        "p_wrap": "Wrap the call at {caller} in try/except {cls}: log it with logger.exception() (the full "
        "traceback, the check number and the inputs) and skip this check instead of ending the process.",
        "p_fix_at": "Fix the cause at {frame}: {hint}",
        "p_hint_KeyError": "the response lacks the key; read it with .get() and treat a missing value as "
        "'no data' (validate the exchange's response).",
        "p_hint_default": "validate the input that reaches this line before using it.",
        "p_no_frame": "The traceback shows no frame of the trader's own code (or none was kept): wrap each "
        "step of the main loop in try/except Exception with logger.exception() so the next failure is "
        "logged with its frames and costs one check, not the process.",
        "p_repeat": "This signature ended {n} processes: fix it before the next occurrence. "
        "PYTHONFAULTHANDLER=1 (the receiver's faulthandler playbook sets it in a removable drop-in) makes "
        "a crash below Python leave a traceback too.",
        "p_timeout": "Raise the API timeout{cur} to 30 s and the retries (with back-off) within their caps "
        "(the receiver's api_timeout playbook does this).",
        "p_timeout_catch": "Catch {cls} around the request at {caller}, retry with back-off and skip the "
        "check when retries run out: a slow exchange must cost one check, not the process.",
        "p_timeout_many": "{n} handled timeouts in the hour before: check the exchange's status and the "
        "network path to {host} before raising the timeout further.",
        # oom
        "s_oom_leak": "memory grew steadily ({slope} MB/h) until the OOM kill: likely a leak",
        "s_oom_spike": "memory jumped shortly before the OOM kill: a spike, not a slow leak",
        "s_oom": "OOM kill{rss}; the trend before it is {trend}",
        "e_anon_rss": "kernel OOM line: anon-rss {mb} MB{vm}",
        "e_slope": "RSS {first} → {last} MB over {hours} h ({slope} MB/h, {n} samples from {src})",
        "e_memmax": "MemoryMax: {value}",
        "e_peak": "MemoryPeak: {value}",
        "e_host": "host memory: {avail} MB available of {total} MB",
        "p_oom_relax": "Relax MemoryMax within its cap and set MALLOC_ARENA_MAX=2 (the receiver's oom playbook "
        "does this).",
        "p_oom_leak": "Find the growth: at {slope} MB/h the limit is reached again in about {hours} h. Compare "
        "tracemalloc snapshots an hour apart; bound caches, order/ticker history and DataFrames.",
        "p_oom_spike": "Find the allocation at the time of the kill: bound the size of responses, batches and "
        "DataFrames loaded at once.",
        "p_oom_trend": "Set report.prometheus_url so the RSS trend before the next kill is known "
        "(leak or spike).",
        # systemd_kill
        "s_kill": "systemd killed the process after {took} (TimeoutStopSec {limit}); {graceful}",
        "s_kill_watchdog": "systemd's watchdog/limit killed the process ({what})",
        "graceful_missing": "the trader logged no shutdown line: graceful shutdown is missing",
        "graceful_slow": "the trader logged its shutdown but did not finish in time",
        "graceful_unknown": "whether the trader saw SIGTERM is not known",
        "e_stop": "stop requested {at}{job}",
        "e_killed": "killed {at} ({took} after the stop request)",
        "e_limit": "TimeoutStopSec: {value}",
        "e_sigterm": "trader's shutdown line: {line}",
        "e_nosigterm": "no SIGTERM/shutdown line from the trader between the stop request and the kill",
        "p_sigterm": "Handle SIGTERM: signal.signal(SIGTERM, …) sets a stop flag, the loop ends the current "
        "check, closes sessions and exits 0 well within TimeoutStopSec; log 'SIGTERM received'.",
        "p_timeoutstop": "Raise TimeoutStopSec within its cap so a slow shutdown is not killed (the receiver's "
        "systemd_kill playbook does this).",
        "p_job": "The stop came from a {job} job: check who started it (deploy script, timer, operator).",
        # supervisor_conflict
        "s_conflict": "a second instance (pid {pid}) was started outside systemd{by}",
        "e_instance": "instance pid {pid}: {cmd}",
        "e_parents": "  started by: {chain}",
        "e_cron": "cron: {file}: {line}",
        "e_unit": "unit: {file}: {line}",
        "e_none_found": "no cron line or other unit starting the trader's command was found",
        "p_remove_cron": "Remove or comment out {file}: {line} — let systemd alone supervise the trader.",
        "p_remove_unit": "Disable the other unit {file} (systemctl disable --now) or drop its ExecStart.",
        "p_lock": "Add a single-instance guard at start-up (fcntl.flock on a lock file) so a second "
        "instance exits at once instead of trading twice.",
        "p_find": "Look for the second supervisor: crontab -l of every user, scripts using nohup/screen/tmux, "
        "@reboot lines.",
        # other
        "s_other": "silent death{check}{sig}; {gaps}",
        "gaps_found": "{n} gap(s) between checks longer than the usual {usual} s",
        "gaps_none": "no gap between checks",
        "e_exit": "exit: {exit}",
        "e_gap": "gap {seconds} s between {a} and {b}",
        "e_clock_back": "clock went backwards: {a} → {b}",
        "e_kernel": "kernel: {line}",
        "e_core": "coredump: {line}",
        "e_nocore": "no coredump for pid {pid}",
        "e_silence": "last log line {seconds} s before the death",
        "p_sleep": "Replace time.sleep(interval) in the check loop by robust_sleep(): sleep in short steps "
        "against time.monotonic() and log when a sleep overslept (a VM pause or a clock jump shows "
        "up as a logged oversleep instead of a silent stall).",
        "p_signals": "Log every signal the process receives (SIGTERM, SIGHUP, SIGINT handlers) and the "
        "exit status in an atexit hook, so the next death names itself.",
        "p_kvm": "Check the VM: the kernel logged {what}; look at host steal time, live migration and "
        "the clocksource (kvm-clock vs tsc) around that time.",
        "p_kvm_gaps": "The gaps between checks point at a paused VM or a clock jump: compare with the "
        "host's steal time and chronyc tracking at those times.",
        "p_faulthandler": "Set PYTHONFAULTHANDLER=1 so the next crash prints a Python traceback{core} "
        "(the receiver's faulthandler playbook does it in a removable drop-in).",
        "core_on": " and LimitCORE= keeps a core dump",
        "p_coredump": "Read the core with coredumpctl info {pid} / coredumpctl debug.",
        "manual": "a manual restart: nothing to fix",
    },
    "ja": {
        "unknown": "不明",
        "not_checked": "未確認: {what}",
        "s_exception": "{exc} が {frame} で発生。{caller} で処理してください",
        "s_exception_here": "{exc} が {frame} で発生。その場で処理してください",
        "s_exception_noframe": "{exc} でプロセスが終了 (トレーダー自身のコードのフレームなし)",
        "e_frame": "失敗したフレーム (トレーダーのコード): {frame}",
        "e_library": "ライブラリ内で発生: {frame}",
        "e_caller": "呼び出し元: {frame}",
        "e_code": "該当行: {code}",
        "e_chain": "例外の連鎖: {chain}",
        "e_signature": "シグネチャ {sig} でのプロセス終了: {n} 回 (初回 {first})",
        "e_source": "ソース {path} の {start}-{end} 行目を確認",
        "e_source_stale": "ソース {path}:{line} がトレースバックと一致しません (ファイルが変更済み)",
        "e_source_none": "ソース {path} はここでは読めません",
        "e_endpoint": "エンドポイント: {endpoint}",
        "e_timeout_msg": "エラー中のタイムアウト値: {value} 秒",
        "e_timeout_cfg": "現在のタイムアウト設定: {key} = {value} (トレーダーの設定)",
        "e_handled": "直前1時間に処理済みのタイムアウト: {n} 回",
        "p_wrap": "{caller} の呼び出しを try/except {cls} で囲み、logger.exception() で記録 (完全なトレース"
        "バック・チェック番号・入力値) して、プロセスを終了させずにこのチェックをスキップしてください。",
        "p_fix_at": "{frame} で原因を修正してください: {hint}",
        "p_hint_KeyError": "レスポンスにキーがありません。.get() で読み、値がない場合は「データなし」として扱って"
        "ください (取引所のレスポンスを検証)。",
        "p_hint_default": "この行に届く入力を使う前に検証してください。",
        "p_no_frame": "トレースバックにトレーダー自身のコードのフレームがありません (または残っていません)。"
        "メインループの各ステップを try/except Exception で囲んで logger.exception() で記録し、次の失敗がフレーム"
        "付きで記録され、プロセスではなく1回のチェックの損失で済むようにしてください。",
        "p_repeat": "このシグネチャで {n} 回プロセスが終了しました。次の発生前に修正してください。"
        "PYTHONFAULTHANDLER=1 (レシーバーの faulthandler プレイブックが元に戻せるドロップインで設定) により、"
        "Python より下でのクラッシュでもトレースバックが残ります。",
        "p_timeout": "API タイムアウト{cur}を 30 秒に、リトライ回数 (バックオフ付き) を上限内で引き上げます "
        "(レシーバーの api_timeout プレイブックが実施)。",
        "p_timeout_catch": "{caller} のリクエストを {cls} で捕捉し、バックオフ付きでリトライ、尽きたらそのチェックを"
        "スキップしてください。取引所の遅延で失うのはプロセスではなく1回のチェックにすべきです。",
        "p_timeout_many": "直前1時間に {n} 回のタイムアウトを処理しています。タイムアウトをさらに上げる前に、"
        "取引所の障害情報と {host} までのネットワークを確認してください。",
        "s_oom_leak": "OOM まで メモリが一定に増加 ({slope} MB/時): メモリリークの可能性大",
        "s_oom_spike": "OOM の直前にメモリが急増: 緩やかなリークではなくスパイク",
        "s_oom": "OOM kill{rss}。直前の傾向: {trend}",
        "e_anon_rss": "カーネルの OOM 行: anon-rss {mb} MB{vm}",
        "e_slope": "RSS {first} → {last} MB ({hours} 時間, {slope} MB/時, {src} の {n} サンプル)",
        "e_memmax": "MemoryMax: {value}",
        "e_peak": "MemoryPeak: {value}",
        "e_host": "ホストのメモリ: 空き {avail} MB / 全体 {total} MB",
        "p_oom_relax": "MemoryMax を上限内で緩和し MALLOC_ARENA_MAX=2 を設定してください (レシーバーの oom プレイブックが実施)。",
        "p_oom_leak": "増加箇所を特定してください: {slope} MB/時 では約 {hours} 時間で再び上限に達します。"
        "1時間おきの tracemalloc スナップショットを比較し、キャッシュ・注文/ティッカー履歴・DataFrame を制限して"
        "ください。",
        "p_oom_spike": "kill 時点の確保を特定してください: 一度に読み込むレスポンス・バッチ・DataFrame の"
        "サイズを制限してください。",
        "p_oom_trend": "次回の kill 前の RSS の傾向 (リークかスパイクか) が分かるよう report.prometheus_url を"
        "設定してください。",
        "s_kill": "systemd が {took} 後にプロセスを強制終了 (TimeoutStopSec {limit})。{graceful}",
        "s_kill_watchdog": "systemd のウォッチドッグ/制限によりプロセスが強制終了されました ({what})",
        "graceful_missing": "トレーダーは停止処理のログを出していません: グレースフルシャットダウンがありません",
        "graceful_slow": "トレーダーは停止処理を開始しましたが時間内に終わりませんでした",
        "graceful_unknown": "トレーダーが SIGTERM を受けたかは不明です",
        "e_stop": "停止要求 {at}{job}",
        "e_killed": "強制終了 {at} (停止要求から {took})",
        "e_limit": "TimeoutStopSec: {value}",
        "e_sigterm": "トレーダーの停止ログ: {line}",
        "e_nosigterm": "停止要求から強制終了までにトレーダーの SIGTERM/停止ログなし",
        "p_sigterm": "SIGTERM を処理してください: signal.signal(SIGTERM, …) で停止フラグを立て、ループは現在の"
        "チェックを終えてセッションを閉じ、TimeoutStopSec より十分前に exit 0。'SIGTERM received' を記録。",
        "p_timeoutstop": "遅い停止処理が kill されないよう TimeoutStopSec を上限内で延長してください "
        "(レシーバーの systemd_kill プレイブックが実施)。",
        "p_job": "停止は {job} ジョブによるものです。誰が開始したか確認してください (デプロイスクリプト・タイマー・"
        "オペレーター)。",
        "s_conflict": "systemd の外で2つ目のインスタンス (pid {pid}) が起動されました{by}",
        "e_instance": "インスタンス pid {pid}: {cmd}",
        "e_parents": "  起動元: {chain}",
        "e_cron": "cron: {file}: {line}",
        "e_unit": "ユニット: {file}: {line}",
        "e_none_found": "トレーダーのコマンドを起動する cron 行や他のユニットは見つかりませんでした",
        "p_remove_cron": "{file}: {line} を削除またはコメントアウトし、systemd だけで管理してください。",
        "p_remove_unit": "他のユニット {file} を無効化する (systemctl disable --now) か ExecStart を外してください。",
        "p_lock": "起動時に単一インスタンスのガード (ロックファイルへの fcntl.flock) を追加し、2つ目は即座に"
        "終了させてください (二重取引の防止)。",
        "p_find": "2つ目の監視元を探してください: 全ユーザーの crontab -l、nohup/screen/tmux を使うスクリプト、"
        "@reboot 行。",
        "s_other": "痕跡のない停止{check}{sig}。{gaps}",
        "gaps_found": "通常 {usual} 秒間隔のチェックに {n} 箇所の空白",
        "gaps_none": "チェック間の空白なし",
        "e_exit": "終了状態: {exit}",
        "e_gap": "{a} と {b} の間に {seconds} 秒の空白",
        "e_clock_back": "時刻が逆行: {a} → {b}",
        "e_kernel": "カーネル: {line}",
        "e_core": "コアダンプ: {line}",
        "e_nocore": "pid {pid} のコアダンプなし",
        "e_silence": "最後のログ行は停止の {seconds} 秒前",
        "p_sleep": "チェックループの time.sleep(interval) を robust_sleep() に置き換えてください: time.monotonic() "
        "に対して短い間隔で眠り、寝過ごしたら記録する (VM の一時停止や時刻の飛びが、静かな停止ではなく記録された"
        "寝過ごしとして見える)。",
        "p_signals": "プロセスが受け取るすべてのシグナル (SIGTERM・SIGHUP・SIGINT のハンドラ) と atexit での終了状態"
        "を記録し、次の停止が自ら原因を残すようにしてください。",
        "p_kvm": "VM を確認してください: カーネルが {what} を記録しています。その時刻のホストの steal time・"
        "ライブマイグレーション・clocksource (kvm-clock / tsc) を確認してください。",
        "p_kvm_gaps": "チェック間の空白は VM の一時停止か時刻の飛びを示します: その時刻のホストの steal time と "
        "chronyc tracking を比較してください。",
        "p_faulthandler": "次のクラッシュで Python のトレースバックが出るよう PYTHONFAULTHANDLER=1 を設定して"
        "ください{core} (レシーバーの faulthandler プレイブックが元に戻せるドロップインで設定します)。",
        "core_on": "。LimitCORE= でコアダンプも残します",
        "p_coredump": "coredumpctl info {pid} / coredumpctl debug でコアを確認してください。",
        "manual": "手動の再起動です。修正は不要です",
    },
}


def text(lang: str, name: str, /, **kw: Any) -> str:
    table = _T.get(lang, _T["en"])
    return table.get(name, _T["en"][name]).format(**kw)


@dataclass(frozen=True)
class Rendered:
    summary: str
    evidence: list[str]
    steps: list[str]
    diff: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary, "evidence": self.evidence, "steps": self.steps}
        if self.diff:
            out["diff"] = self.diff
        return out


@dataclass(frozen=True)
class Proposal:
    """The facts of one restart's investigation; rendered on demand (text only, never applied)."""

    cause: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: str = "en") -> Rendered:
        return render(self.cause, self.facts, lang)

    @property
    def frame(self) -> str | None:
        """The failing frame of the trader's own code as ``path:line in function``."""
        f = self.facts.get("frame")
        return frame_text(f) if isinstance(f, Mapping) else None

    def to_json(self, lang: str = "en") -> dict[str, Any]:
        out = self.render(lang).to_json()
        if self.frame:
            out["frame"] = self.frame
        out["facts"] = dict(self.facts)
        return out


def frame_text(f: Mapping[str, Any]) -> str:
    return f"{f.get('path')}:{f.get('line')} in {f.get('function')}"


def render(cause: str, facts: Facts, lang: str = "en") -> Rendered:
    builder = _BUILDERS.get(cause)
    if builder is None:
        return Rendered(text(lang, "manual"), [], [])
    summary, evidence, steps, diff = builder(facts, lang)
    evidence = evidence + [text(lang, "not_checked", what=w) for w in facts.get("not_checked", [])]
    return Rendered(summary, evidence, steps, diff)


_Built = tuple[str, list[str], list[str], str | None]


def _short(exc: str, limit: int = 120) -> str:
    return exc if len(exc) <= limit else exc[: limit - 1] + "…"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _exception(f: Facts, lang: str) -> _Built:
    ev: list[str] = []
    steps: list[str] = []
    exc = str(f.get("exception") or "?")
    cls = str(f.get("exception_class") or "Exception")
    frame = f.get("frame")
    caller: Any = f.get("caller") or frame
    timeout = f.get("cause") == "api_timeout"
    if isinstance(frame, Mapping):
        where = frame_text(frame)
        if caller is frame:
            summary = text(lang, "s_exception_here", exc=_short(exc), frame=where)
        else:
            summary = text(lang, "s_exception", exc=_short(exc), frame=where, caller=frame_text(caller))
        ev.append(text(lang, "e_frame", frame=where))
        if frame.get("code"):
            ev.append(text(lang, "e_code", code=frame["code"]))
    else:
        summary = text(lang, "s_exception_noframe", exc=_short(exc))
    lib = f.get("library_frame")
    if isinstance(lib, Mapping):
        ev.append(text(lang, "e_library", frame=frame_text(lib)))
    if isinstance(caller, Mapping) and isinstance(frame, Mapping) and caller is not frame:
        ev.append(text(lang, "e_caller", frame=frame_text(caller)))
    chain = f.get("chain") or []
    if len(chain) > 1:
        ev.append(text(lang, "e_chain", chain=" → ".join(str(c)[:200] for c in chain)))
    if f.get("signature"):
        ev.append(
            text(
                lang,
                "e_signature",
                sig=f["signature"],
                n=f.get("signature_count", 1),
                first=f.get("signature_first_seen") or "-",
            )
        )
    src = f.get("source")
    if isinstance(src, Mapping):
        if src.get("lines"):
            start = int(src.get("start", 1))
            ev.append(
                text(lang, "e_source", path=src["path"], start=start, end=start + len(src["lines"]) - 1)
            )
        if src.get("stale"):
            ev.append(text(lang, "e_source_stale", path=src["path"], line=src.get("line")))
        if not src.get("lines") and not src.get("stale"):
            ev.append(text(lang, "e_source_none", path=src.get("path")))
    other_src = f.get("caller_source")
    if isinstance(other_src, Mapping) and other_src.get("stale"):
        ev.append(text(lang, "e_source_stale", path=other_src["path"], line=other_src.get("line")))
    if timeout:
        if f.get("endpoint"):
            ev.append(text(lang, "e_endpoint", endpoint=f["endpoint"]))
        if f.get("timeout_in_message") is not None:
            ev.append(text(lang, "e_timeout_msg", value=f"{f['timeout_in_message']:g}"))
        cfg = f.get("timeout_config")
        if isinstance(cfg, Mapping):
            ev.append(text(lang, "e_timeout_cfg", key=cfg.get("key"), value=_num(cfg.get("value"))))
        if f.get("handled_timeouts_hour") is not None:
            ev.append(text(lang, "e_handled", n=f["handled_timeouts_hour"]))
        cur = ""
        if isinstance(cfg, Mapping) and cfg.get("value") is not None:
            cur = f" ({cfg.get('key')}={_num(cfg.get('value'))})"
        elif f.get("timeout_in_message") is not None:
            cur = f" ({f['timeout_in_message']:g} s)"
        steps.append(text(lang, "p_timeout", cur=cur))
        if isinstance(caller, Mapping):
            steps.append(text(lang, "p_timeout_catch", cls=cls, caller=frame_text(caller)))
        else:
            steps.append(text(lang, "p_no_frame"))
        handled = f.get("handled_timeouts_hour")
        if isinstance(handled, int) and handled >= 3:
            host = str(f.get("endpoint") or "?").split("/", 1)[0]
            steps.append(text(lang, "p_timeout_many", n=handled, host=host))
    else:
        if isinstance(caller, Mapping):
            steps.append(text(lang, "p_wrap", caller=frame_text(caller), cls=cls))
        if isinstance(frame, Mapping):
            short = cls.rsplit(".", 1)[-1]
            hint = (
                text(lang, f"p_hint_{short}")
                if f"p_hint_{short}" in _T["en"]
                else text(lang, "p_hint_default")
            )
            steps.append(text(lang, "p_fix_at", frame=frame_text(frame), hint=hint))
        else:
            steps.append(text(lang, "p_no_frame"))
        n = int(f.get("signature_count") or 1)
        if n >= 2:
            steps.append(text(lang, "p_repeat", n=n))
    diff = f.get("diff")
    return summary, ev, steps, str(diff) if diff else None


def _oom(f: Facts, lang: str) -> _Built:
    ev: list[str] = []
    steps = [text(lang, "p_oom_relax")]
    pattern = f.get("pattern")
    slope = f.get("rss_slope_mb_per_h")
    if pattern == "leak" and slope is not None:
        summary = text(lang, "s_oom_leak", slope=slope)
    elif pattern == "spike":
        summary = text(lang, "s_oom_spike")
    else:
        rss = f" (anon-rss {f['anon_rss_mb']} MB)" if f.get("anon_rss_mb") is not None else ""
        summary = text(lang, "s_oom", rss=rss, trend=pattern or text(lang, "unknown"))
    if f.get("anon_rss_mb") is not None:
        vm = f", total-vm {f['total_vm_mb']} MB" if f.get("total_vm_mb") is not None else ""
        ev.append(text(lang, "e_anon_rss", mb=f["anon_rss_mb"], vm=vm))
    if slope is not None:
        ev.append(
            text(
                lang,
                "e_slope",
                first=f.get("rss_first_mb"),
                last=f.get("rss_last_mb"),
                hours=f.get("rss_span_h"),
                slope=slope,
                n=f.get("rss_samples"),
                src=f.get("trend_source"),
            )
        )
    for key, name in (("memory_max", "e_memmax"), ("memory_peak", "e_peak")):
        if f.get(key):
            ev.append(text(lang, name, value=f[key]))
    if f.get("host_total_mb") is not None:
        ev.append(text(lang, "e_host", avail=f.get("host_available_mb"), total=f["host_total_mb"]))
    if pattern == "leak" and slope:
        limit_mb = f.get("memory_max_mb") or f.get("rss_last_mb")
        hours = round(float(limit_mb) / float(slope), 1) if limit_mb and slope > 0 else "?"
        steps.append(text(lang, "p_oom_leak", slope=slope, hours=hours))
    elif pattern == "spike":
        steps.append(text(lang, "p_oom_spike"))
    else:
        steps.append(text(lang, "p_oom_trend"))
    return summary, ev, steps, None


def _duration(seconds: Any, lang: str) -> str:
    if seconds is None:
        return text(lang, "unknown")
    return f"{float(seconds):g}s"


def _systemd_kill(f: Facts, lang: str) -> _Built:
    ev: list[str] = []
    kind = f.get("kill_kind") or "stop_timeout"
    logged = f.get("sigterm_logged")
    graceful = text(
        lang,
        "graceful_slow" if logged else ("graceful_missing" if logged is False else "graceful_unknown"),
    )
    if kind == "stop_timeout":
        summary = text(
            lang,
            "s_kill",
            took=_duration(f.get("stop_seconds"), lang),
            limit=_duration(f.get("timeout_stop_seconds"), lang),
            graceful=graceful,
        )
    else:
        summary = text(lang, "s_kill_watchdog", what=f.get("kill_line") or kind)
    if f.get("stop_requested_at"):
        job = f" ({f['job']})" if f.get("job") else ""
        ev.append(text(lang, "e_stop", at=f["stop_requested_at"], job=job))
    if f.get("killed_at"):
        ev.append(text(lang, "e_killed", at=f["killed_at"], took=_duration(f.get("stop_seconds"), lang)))
    if f.get("timeout_stop_seconds") is not None:
        ev.append(text(lang, "e_limit", value=_duration(f["timeout_stop_seconds"], lang)))
    if logged:
        ev.append(text(lang, "e_sigterm", line=str(f.get("sigterm_line") or "")[:200]))
    elif logged is False:
        ev.append(text(lang, "e_nosigterm"))
    steps = [text(lang, "p_sigterm"), text(lang, "p_timeoutstop")]
    if f.get("job"):
        steps.append(text(lang, "p_job", job=f["job"]))
    return summary, ev, steps, None


def _conflict(f: Facts, lang: str) -> _Built:
    ev: list[str] = []
    steps: list[str] = []
    cron = list(f.get("cron") or [])
    units = list(f.get("units") or [])
    by = ""
    if cron:
        by = f" (cron: {cron[0]['file']})"
    elif units:
        by = f" ({units[0]['file']})"
    summary = text(lang, "s_conflict", pid=f.get("new_pid") or "?", by=by)
    for inst in f.get("instances") or []:
        ev.append(text(lang, "e_instance", pid=inst.get("pid"), cmd=str(inst.get("cmdline", ""))[:200]))
        chain = " ← ".join(f"{p.get('pid')} {p.get('name')}" for p in inst.get("parents") or [])
        if chain:
            ev.append(text(lang, "e_parents", chain=chain))
    for c in cron:
        ev.append(text(lang, "e_cron", file=c["file"], line=c["line"]))
        steps.append(text(lang, "p_remove_cron", file=c["file"], line=c["line"]))
    for u in units:
        ev.append(text(lang, "e_unit", file=u["file"], line=u["line"]))
        steps.append(text(lang, "p_remove_unit", file=u["file"]))
    if not cron and not units and "cron" in f:
        ev.append(text(lang, "e_none_found"))
        steps.append(text(lang, "p_find"))
    elif not cron and not units:
        steps.append(text(lang, "p_find"))
    steps.append(text(lang, "p_lock"))
    return summary, ev, steps, None


def _other(f: Facts, lang: str) -> _Built:
    ev: list[str] = []
    gaps: Sequence[Mapping[str, Any]] = f.get("gaps") or []
    check = f" (check #{f['last_check']})" if f.get("last_check") is not None else ""
    sig = f", {f['exit']}" if f.get("exit") else ""
    gap_text = (
        text(lang, "gaps_found", n=len(gaps), usual=f.get("usual_interval"))
        if gaps
        else text(lang, "gaps_none")
        if f.get("usual_interval") is not None
        else text(lang, "unknown")
    )
    summary = text(lang, "s_other", check=check, sig=sig, gaps=gap_text)
    if f.get("exit"):
        ev.append(text(lang, "e_exit", exit=f["exit"]))
    if f.get("silence_seconds") is not None:
        ev.append(text(lang, "e_silence", seconds=f["silence_seconds"]))
    for g in gaps[:5]:
        ev.append(text(lang, "e_gap", seconds=g["seconds"], a=g["from"], b=g["to"]))
    for c in (f.get("clock_back") or [])[:3]:
        ev.append(text(lang, "e_clock_back", a=c["from"], b=c["to"]))
    kernel = list(f.get("kernel") or [])
    for line in kernel[:5]:
        ev.append(text(lang, "e_kernel", line=str(line)[:200]))
    core = f.get("coredump")
    if core:
        ev.extend(text(lang, "e_core", line=str(c)[:200]) for c in core[:4])
    elif "coredump" in f and f.get("previous_pid"):
        ev.append(text(lang, "e_nocore", pid=f["previous_pid"]))
    steps = [text(lang, "p_sleep"), text(lang, "p_signals")]
    if kernel:
        what = ", ".join(sorted({str(k) for k in f.get("kernel_kinds") or []})) or "kernel lines"
        steps.append(text(lang, "p_kvm", what=what))
    if gaps:
        steps.append(text(lang, "p_kvm_gaps"))
    steps.append(text(lang, "p_faulthandler", core=text(lang, "core_on") if f.get("limit_core") else ""))
    if core and f.get("previous_pid"):
        steps.append(text(lang, "p_coredump", pid=f["previous_pid"]))
    return summary, ev, steps, None


_BUILDERS = {
    "exception": _exception,
    "api_timeout": _exception,
    "oom": _oom,
    "systemd_kill": _systemd_kill,
    "supervisor_conflict": _conflict,
    "other": _other,
}
