"""Benchmark the offline speech assistant (`voicecli serve --responder assistant`) on loopback.

One call, 10 spoken prompts made with espeak-ng (Klatt voice, 150 wpm), sent as `voicecli ask
--in` sends a WAV: the speech in real time on the RTP track, 100 ms of silence, then
`input_audio_buffer.commit` + `response.create`; `get_time` calls are answered as the client
does. Per prompt it measures, at the client:

- end of speech → first audio: the last speech sample leaving the client's track → the first
  audible frame of the spoken answer arriving (after the tool round trip for time questions);
- commit → first audio: the same from the end-of-turn signal (the part the server controls);
- the transcript (`input_audio_transcription.completed`) against the prompt: word error rate.

CPU per second of conversation: user+system CPU of the server process and its recogniser
worker over the conversation's wall time. The same conversation against `--responder echo`
(which plays the user's own audio back) is the CPU baseline in the same run; its latency is not
comparable (it replays the whole committed buffer, silence between turns included).

    .venv/bin/python bench/assistant.py [--json PATH]

A warm-up turn ("hello"), not counted, lets the recogniser load first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicecli.audio.dsp import rms_dbfs, silence
from voicecli.audio.formats import Pcm
from voicecli.audio.wav import read_wav_48k
from voicecli.realtime.tools import GetTimeTool
from voicecli.server.assistant.evaluation import speak_to_wav, word_error_rate
from voicecli.testing.offerer import Offerer

KEY = "sk-bench-assistant-000000000"
PROMPTS = [
    "what time is it",
    "what is the date today",
    "what is two plus three",
    "what is seven times eight",
    "what is twelve divided by three",
    "what can you do",
    "repeat after me the weather is nice",
    "what day is it",
    "how are you today",
    "where is the nearest train station",
]
OPEN_SPEECH = {"how are you today", "where is the nearest train station"}
WARM_UP = "hello"
COMMIT_TAIL_MS = 100  # as `voicecli ask --in`: the last RTP frame must land before the commit
AUDIBLE_DBFS = -50.0
TURN_TIMEOUT_S = 30.0
TARGET_P50_MS = 400.0


@dataclass
class Turn:
    prompt: str
    heard: str
    answer: str
    speech_to_audio_ms: float
    commit_to_audio_ms: float


@dataclass
class Run:
    responder: str
    turns: list[Turn] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def cpu_per_s(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


# ---- the server and its CPU ------------------------------------------------------------------


def start_server(responder: str) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "voicecli", "serve", "--port", "0", "--api-key", KEY]
    server = subprocess.Popen(
        [*args, "--responder", responder],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (the recogniser worker)."""
    ticks = _ticks(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    ticks += sum(_ticks(int(child)) for child in children)
    return ticks / os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


# ---- one conversation ------------------------------------------------------------------------


def session() -> dict[str, Any]:
    tool = GetTimeTool()
    return {
        "type": "realtime",
        "audio": {
            "input": {
                "turn_detection": None,
                "transcription": {"model": "gpt-4o-mini-transcribe"},
            }
        },
        "tools": [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
        ],
    }


async def turn(client: Offerer, prompt: str, speech: Pcm) -> Turn:
    mark, frames = len(client.events), len(client.audio_in)
    client.mic.push(speech)
    await client.mic.drained.wait()
    spoke = time.perf_counter()
    client.mic.push(silence(COMMIT_TAIL_MS))
    await client.mic.drained.wait()
    committed = time.perf_counter()
    client.send({"type": "input_audio_buffer.commit"})
    client.send({"type": "response.create"})
    heard = await client.wait_for(
        "conversation.item.input_audio_transcription.completed", TURN_TIMEOUT_S, mark
    )
    answer = await answer_with_tools(client, mark)
    first = first_audible(client, frames, spoke)
    return Turn(
        prompt,
        heard["transcript"],
        answer,
        (first - spoke) * 1000,
        (first - committed) * 1000,
    )


async def answer_with_tools(client: Offerer, mark: int) -> str:
    """Run get_time calls as the client does; the spoken answer's transcript."""
    while True:
        done = await client.wait_for("response.done", TURN_TIMEOUT_S, mark)
        mark = client.events.index(done) + 1
        calls = [o for o in done["response"]["output"] if o["type"] == "function_call"]
        if not calls:
            break
        for call in calls:
            output = await GetTimeTool().run({})
            item = {"type": "function_call_output", "call_id": call["call_id"], "output": output}
            client.send({"type": "conversation.item.create", "item": item})
        client.send({"type": "response.create"})
    await client.wait_for("output_audio_buffer.stopped", TURN_TIMEOUT_S, mark)
    texts = [
        part.get("transcript", "")
        for item in done["response"]["output"]
        for part in item.get("content") or []
    ]
    return " ".join(t for t in texts if t)


def first_audible(client: Offerer, since_frame: int, after: float) -> float:
    for arrived, pcm in client.audio_in[since_frame:]:
        if arrived > after and rms_dbfs(pcm) > AUDIBLE_DBFS:
            return arrived
    raise RuntimeError("no audible answer arrived")


async def conversation(responder: str, speech: dict[str, Pcm]) -> Run:
    server, base_url = start_server(responder)
    run = Run(responder)
    try:
        client = Offerer(base_url, KEY, session=session())
        await client.connect(timeout_s=20)
        try:
            await turn(client, WARM_UP, speech[WARM_UP])
            cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
            for prompt in PROMPTS:
                run.turns.append(await turn(client, prompt, speech[prompt]))
            run.cpu_s = cpu_seconds(server.pid) - cpu0
            run.wall_s = time.perf_counter() - wall0
        finally:
            await client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return run


def prompts_audio(folder: Path) -> dict[str, Pcm]:
    spoken = {}
    for index, text in enumerate([WARM_UP, *PROMPTS]):
        pcm = read_wav_48k(speak_to_wav(text, folder / f"prompt{index}.wav"))
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 100)
        spoken[text] = pcm[: loud[-1] + 1]  # end of speech = the last audible sample
    return spoken


# ---- report ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(assistant: Run, echo: Run) -> dict[str, Any]:
    latency = [t.speech_to_audio_ms for t in assistant.turns]
    from_commit = [t.commit_to_audio_ms for t in assistant.turns]
    pairs = [(t.prompt, t.heard) for t in assistant.turns]
    summary = {
        "speech_to_audio_p50_ms": percentile(latency, 50),
        "speech_to_audio_p95_ms": percentile(latency, 95),
        "commit_to_audio_p50_ms": percentile(from_commit, 50),
        "commit_to_audio_p95_ms": percentile(from_commit, 95),
        "wer_all": word_error_rate(pairs),
        "wer_commands": word_error_rate(p for p in pairs if p[0] not in OPEN_SPEECH),
        "wer_open_speech": word_error_rate(p for p in pairs if p[0] in OPEN_SPEECH),
        "cpu_per_s": assistant.cpu_per_s,
        "echo_cpu_per_s": echo.cpu_per_s,
    }
    print("voicecli serve --responder assistant, one call on loopback, 10 spoken prompts\n")
    print(f"{'prompt':<38}{'heard':<40}{'speech→audio':>13}{'commit→audio':>13}  answer")
    for t in assistant.turns:
        print(
            f"{t.prompt:<38}{t.heard:<40}{t.speech_to_audio_ms:>10.0f} ms"
            f"{t.commit_to_audio_ms:>10.0f} ms  {t.answer}"
        )
    print(
        f"\nend of speech → first audio: p50 {summary['speech_to_audio_p50_ms']:.0f} ms, "
        f"p95 {summary['speech_to_audio_p95_ms']:.0f} ms (target p50 ≤ {TARGET_P50_MS:.0f} ms; "
        f"includes the {COMMIT_TAIL_MS} ms tail before the commit)"
    )
    print(
        f"commit → first audio: p50 {summary['commit_to_audio_p50_ms']:.0f} ms, "
        f"p95 {summary['commit_to_audio_p95_ms']:.0f} ms"
    )
    print(
        f"word error rate: {summary['wer_all']:.2f} overall, {summary['wer_commands']:.2f} on "
        f"commands, {summary['wer_open_speech']:.2f} on open speech"
    )
    ratio = assistant.cpu_per_s / echo.cpu_per_s if echo.cpu_per_s else float("nan")
    print(
        f"CPU per second of conversation: {assistant.cpu_per_s:.3f} s/s "
        f"(echo {echo.cpu_per_s:.3f} s/s, ratio {ratio:.2f}) over {assistant.wall_s:.1f} s"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        speech = prompts_audio(Path(folder))
        assistant = asyncio.run(conversation("assistant", speech))
        echo = asyncio.run(conversation("echo", speech))
    summary = report(assistant, echo)
    if args.json is not None:
        result = {"summary": summary, "turns": [asdict(t) for t in assistant.turns]}
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
