#!/usr/bin/env node
// The file LETTA_CLI_PATH names so that the Letta Code SDK runs switchboard as its
// CLI. The SDK always starts `node <LETTA_CLI_PATH> <flags>`; this runs
// `switchboard <flags>` (SWITCHBOARD_BIN, else `switchboard` on PATH) with the same
// standard streams, passes on the signals the SDK sends, and exits as it exits.
"use strict";
const { spawn } = require("node:child_process");

const program = process.env.SWITCHBOARD_BIN || "switchboard";
const child = spawn(program, process.argv.slice(2), { stdio: "inherit" });

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.on("error", (error) => {
  process.stderr.write(`switchboard: cannot start ${program} (${error.message}); set SWITCHBOARD_BIN to its path\n`);
  process.exit(127);
});
child.on("exit", (code, signal) => {
  if (code !== null) process.exit(code);
  // Ended by a signal (the SDK's SIGTERM): end the same way, as the SDK expects of its CLI.
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
});
