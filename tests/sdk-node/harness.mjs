// Shared set-up for the SDK tests: the fake model on 127.0.0.1, a fresh data
// directory, and the environment that makes the unmodified SDK start switchboard
// through the shim in deploy/letta-code-sdk.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const repo = resolve(import.meta.dirname, "../..");
const target = process.env.SB_TARGET_DIR || join(repo, "target");

export const switchboard = join(target, "debug", "switchboard");
export const shim = join(repo, "deploy", "letta-code-sdk", "switchboard.cjs");

/** Starts the fake model (agent mode) and points the environment at it. */
export async function setUp({ chunkDelayMs = 60, idleSecs = 2 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-sdk-"));
  const work = join(dir, "work");
  mkdirSync(work);
  const llm = spawn(join(target, "debug", "examples", "fake_llm"), [String(chunkDelayMs), "agent"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const baseUrl = await new Promise((ok, fail) => {
    const lines = createInterface({ input: llm.stdout });
    lines.once("line", ok);
    llm.once("exit", (code) => fail(new Error(`the fake model exited (${code})`)));
  });
  for (const key of Object.keys(process.env)) {
    if (key.startsWith("SWITCHBOARD_")) delete process.env[key];
  }
  Object.assign(process.env, {
    LETTA_CLI_PATH: shim,
    SWITCHBOARD_BIN: switchboard,
    SWITCHBOARD_DATA_DIR: join(dir, "data"),
    SWITCHBOARD_LLM__BASE_URL: baseUrl,
    SWITCHBOARD_LLM__MODEL: "fake-model",
    SWITCHBOARD_ENGINE__IDLE_SECS: String(idleSecs),
  });
  // The SDK starts its processes in the app's directory: that is the tools' workspace.
  process.chdir(work);
  return {
    dir,
    work,
    data: join(dir, "data"),
    close() {
      llm.stdin.end();
      llm.kill();
    },
  };
}

/** Reads a turn to its result; returns every message and the result. */
export async function drain(session) {
  const messages = [];
  for await (const message of session.stream()) messages.push(message);
  const result = messages.at(-1);
  return { messages, result };
}

/** `switchboard <args>` once the background engine has let go of the data directory. */
export async function cli(args, { waitForEngine = true } = {}) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const out = spawnSync(switchboard, args, { encoding: "utf8" });
    const locked = /in use|is locked|held by/i.test(out.stderr);
    if (!locked || !waitForEngine || Date.now() > deadline) return out;
    await new Promise((r) => setTimeout(r, 200));
  }
}
