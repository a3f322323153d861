// The "Persistent agent with multi-turn conversations" example of the Letta Code SDK
// documentation (reference/sdk-docs.md), unchanged below this comment. run.sh
// compiles it with TypeScript and runs it against switchboard through the shim.
import { createAgent, resumeSession } from "@letta-ai/letta-code-sdk";


// Create agent with custom configuration
const agentId = await createAgent({
  persona: "You are a Python expert specialized in data science.",
});


console.log("Agent ID:", agentId); // Save this for later!


// Resume session on agent's default conversation
await using session = resumeSession(agentId);


// Turn 1
await session.send("What's the best way to load a CSV?");
for await (const msg of session.stream()) {
  if (msg.type === "assistant") console.log(msg.content);
}


// Turn 2 - agent remembers previous context
await session.send("Show me an example with pandas");
for await (const msg of session.stream()) {
  if (msg.type === "assistant") console.log(msg.content);
}


// Later: Resume the same agent using the saved ID
await using laterSession = resumeSession(agentId);
await laterSession.send("What were we discussing?");
for await (const msg of laterSession.stream()) {
  if (msg.type === "assistant") console.log(msg.content);
}
