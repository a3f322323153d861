// Run by the test "a session killed mid-turn": starts a turn on the agent's default
// conversation, says when the turn has started, then waits to be killed.
import { resumeSession } from "@letta-ai/letta-code-sdk";

const session = resumeSession(process.argv[2]);
await session.initialize();
await session.send("slow words from a process that gets killed");
for await (const message of session.stream()) {
  if (message.type === "stream_event" || message.type === "assistant") {
    process.stdout.write("streaming\n");
    break;
  }
}
setInterval(() => {}, 1000);
