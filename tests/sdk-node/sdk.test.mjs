// The unmodified Letta Code SDK (0.1.14 from npm) driving switchboard: every spawn
// shape, streaming, tools and permissions, message pages, interrupts, restarts and
// several processes at once. Run by run.sh (which builds switchboard and the fake model).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { createAgent, createSession, listMessagesDirect, prompt, resumeSession } from "@letta-ai/letta-code-sdk";

import { cli, drain, setUp } from "./harness.mjs";

let env;
before(async () => {
  env = await setUp();
});
after(() => env.close());

const texts = (messages, type) => messages.filter((m) => m.type === type).map((m) => m.content);

describe("spawn shapes", () => {
  test("createAgent stores the agent and its memory before init; resumeSession finds its default conversation", async () => {
    const agentId = await createAgent({
      persona: "I am the test persona.",
      memory: ["persona", { label: "project", value: "switchboard SDK tests", description: "What we work on" }],
    });
    assert.match(agentId, /^agent-/);

    const first = resumeSession(agentId);
    const init = await first.initialize();
    assert.equal(init.agentId, agentId);
    assert.match(init.conversationId, /^conv-/);
    assert.ok(Array.isArray(init.tools) && init.tools.includes("Bash"));
    assert.ok(!init.tools.includes("AskUserQuestion"));
    await first.send("remember the word pineapple");
    const { result } = await drain(first);
    assert.equal(result.success, true, JSON.stringify(result));
    assert.equal(result.conversationId, init.conversationId);
    first.close();

    // A new process: the same default conversation, with the earlier turn in it.
    const second = resumeSession(agentId);
    const again = await second.initialize();
    assert.equal(again.conversationId, init.conversationId);
    const page = await second.listMessages({ order: "asc" });
    const said = page.messages.map((m) => m.content).join("\n");
    assert.match(said, /remember the word pineapple/);
    assert.match(said, /echo: remember the word pineapple/);
    second.close();

    // The memory went where createAgent said.
    const shown = await cli(["agent", "show", agentId]);
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /I am the test persona\./);
    assert.match(shown.stdout, /switchboard SDK tests/);
  });

  test("resumeSession(conversationId) reopens that conversation on its agent", async () => {
    const agentId = await createAgent();
    const session = createSession(agentId);
    const init = await session.initialize();
    await session.send("first words");
    await drain(session);
    session.close();

    const resumed = resumeSession(init.conversationId);
    const again = await resumed.initialize();
    assert.equal(again.conversationId, init.conversationId);
    assert.equal(again.agentId, agentId);
    const page = await resumed.listMessages();
    assert.ok(page.messages.some((m) => m.content === "first words"));
    resumed.close();
  });

  test("createSession(agentId) starts a new conversation each time", async () => {
    const agentId = await createAgent();
    const a = createSession(agentId);
    const b = createSession(agentId);
    const [ia, ib] = await Promise.all([a.initialize(), b.initialize()]);
    assert.notEqual(ia.conversationId, ib.conversationId);
    assert.equal(ia.agentId, agentId);
    a.close();
    b.close();
  });

  test("prompt() with no agent runs one turn on the default agent", async () => {
    const result = await prompt("hello from prompt");
    assert.equal(result.success, true, JSON.stringify(result));
    assert.equal(result.result, "echo: hello from prompt");
    assert.match(result.conversationId, /^conv-/);
  });

  test("an unknown conversation fails start-up with the engine's words", async () => {
    const session = resumeSession("conv-00000000-0000-0000-0000-000000000000");
    await assert.rejects(session.initialize(), /Failed to initialize session[\s\S]*not found/);
    session.close();
  });

  test("listMessagesDirect reads an agent's default conversation", async () => {
    const agentId = await createAgent();
    const session = resumeSession(agentId);
    await session.send("direct listing");
    await drain(session);
    session.close();
    const page = await listMessagesDirect(agentId, { limit: 10 });
    assert.ok(page.messages.some((m) => m.content === "direct listing"), JSON.stringify(page));
  });
});

describe("what the model sees", () => {
  test("turn 2 remembers turn 1, also in a new process", async () => {
    const agentId = await createAgent();
    const first = resumeSession(agentId);
    await first.send("my favourite colour is teal");
    await drain(first);
    const { result } = await (async () => {
      await first.send("RECALL");
      return drain(first);
    })();
    first.close();
    assert.equal(result.result, "you said: my favourite colour is teal");

    const later = resumeSession(agentId);
    await later.send("RECALL");
    const again = await drain(later);
    later.close();
    assert.equal(again.result.result, "you said: my favourite colour is teal | RECALL");
  });

  test("memory blocks given at creation reach the model", async () => {
    const agentId = await createAgent({
      persona: "I am the persona under test.",
      memory: ["persona", { label: "project", value: "Project Kestrel", description: "The project" }],
    });
    const session = resumeSession(agentId);
    await session.send("MEMORY");
    const { result } = await drain(session);
    session.close();
    assert.match(result.result, /I am the persona under test\./);
    assert.match(result.result, /Project Kestrel/);
    assert.doesNotMatch(result.result, /<human>/, "only the blocks asked for were created");
  });

  test("a session killed mid-turn loses nothing: the next process resumes the conversation", async () => {
    const agentId = await createAgent();
    const child = spawn(process.execPath, [join(import.meta.dirname, "killed-session.mjs"), agentId], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise((ok) => child.stdout.once("data", ok));
    child.kill("SIGKILL");
    await new Promise((ok) => child.once("exit", ok));

    const session = resumeSession(agentId);
    await session.send("after the kill");
    const { result } = await drain(session);
    const page = await session.listMessages({ order: "asc" });
    session.close();
    assert.equal(result.success, true);
    const said = page.messages.filter((m) => m.message_type === "user_message").map((m) => m.content);
    assert.deepEqual(said, ["slow words from a process that gets killed", "after the kill"]);
  });

  test("disallowedTools: AskUserQuestion is neither offered in init nor run", async () => {
    const session = createSession(undefined, { disallowedTools: ["AskUserQuestion"], permissionMode: "bypassPermissions" });
    const init = await session.initialize();
    assert.ok(!init.tools.includes("AskUserQuestion"));
    await session.send('CALL AskUserQuestion {"questions":[]}');
    const { messages, result } = await drain(session);
    session.close();
    const done = messages.find((m) => m.type === "tool_result");
    assert.ok(done, JSON.stringify(messages));
    assert.equal(done.isError, true);
    assert.equal(result.success, true);
  });
});

describe("turns", () => {
  test("partial messages stream as stream_event and the result holds the whole reply", async () => {
    const session = createSession(undefined, { includePartialMessages: true });
    await session.send("slow partial reply");
    const { messages, result } = await drain(session);
    session.close();
    const events = messages.filter((m) => m.type === "stream_event");
    // Ten deltas arrive 60 ms apart; they are sent in a few chunks, not one by one.
    assert.ok(events.length >= 3 && events.length < 10, `expected a few chunks, got ${JSON.stringify(messages)}`);
    assert.equal(events.map((e) => e.event.content).join(""), "echo: slow partial reply");
    assert.equal(texts(messages, "assistant").length, 0);
    assert.equal(result.result, "echo: slow partial reply");
  });

  test("two turns in one session each end with exactly one result", async () => {
    const session = createSession();
    for (const word of ["one", "two"]) {
      await session.send(`turn ${word}`);
      const { messages, result } = await drain(session);
      assert.equal(messages.filter((m) => m.type === "result").length, 1);
      assert.deepEqual(texts(messages, "assistant"), [`echo: turn ${word}`]);
      assert.equal(result.result, `echo: turn ${word}`);
    }
    session.close();
  });

  test("listMessages pages newest first, disjoint, with next_before", async () => {
    const session = createSession();
    for (const n of [1, 2]) {
      await session.send(`page turn ${n}`);
      await drain(session);
    }
    const first = await session.listMessages({ limit: 2, order: "desc" });
    assert.equal(first.messages.length, 2);
    assert.equal(first.hasMore, true);
    assert.ok(first.nextBefore);
    for (const m of first.messages) {
      assert.equal(typeof m.id, "string");
      assert.equal(typeof m.message_type, "string");
    }
    const older = await session.listMessages({ limit: 2, order: "desc", before: first.nextBefore });
    const ids = new Set(first.messages.map((m) => m.id));
    assert.ok(older.messages.every((m) => !ids.has(m.id)), "pages overlap");
    const asc = await session.listMessages({ limit: 1, order: "asc" });
    assert.notEqual(asc.messages[0].id, first.messages[0].id);
    assert.equal(asc.messages[0].content, "page turn 1");
    session.close();
  });

  test("listMessages is answered while a turn streams", async () => {
    const session = createSession();
    await session.send("slow reply while listing");
    const events = [];
    const listing = session.listMessages({ limit: 5 }).then((page) => {
      events.push("listed");
      return page;
    });
    for await (const message of session.stream()) {
      if (message.type === "result") events.push("result");
    }
    const page = await listing;
    assert.deepEqual(events, ["listed", "result"]);
    assert.ok(page.messages.some((m) => m.content === "slow reply while listing"));
    session.close();
  });

  test("abort() interrupts a running turn: one result, interrupted", async () => {
    const session = createSession();
    await session.send("slow reply to interrupt");
    // The reply streams for about 600 ms; stop it a third of the way in.
    setTimeout(() => session.abort(), 200);
    const { messages, result } = await drain(session);
    assert.equal(messages.filter((m) => m.type === "result").length, 1);
    assert.equal(result.type, "result");
    assert.equal(result.success, false);
    assert.equal(result.error, "interrupted");
    // The session takes the next turn (the fake model answers every message since
    // its last whole reply, so the interrupted one too).
    await session.send("after the interrupt");
    const next = await drain(session);
    session.close();
    assert.equal(next.result.success, true);
    assert.match(next.result.result, /after the interrupt$/);
  });
});

describe("tools and permissions", () => {
  test("bypassPermissions runs the tool: tool_call, tool_result, then the reply", async () => {
    const session = createSession(undefined, { permissionMode: "bypassPermissions" });
    await session.send("RUN echo bypassed > ran-bypass.txt");
    const { messages, result } = await drain(session);
    const call = messages.find((m) => m.type === "tool_call");
    assert.equal(call.toolName, "Bash");
    assert.equal(call.toolInput.command, "echo bypassed > ran-bypass.txt");
    assert.ok(call.toolCallId);
    const done = messages.find((m) => m.type === "tool_result");
    assert.equal(done.toolCallId, call.toolCallId);
    assert.equal(done.isError, false);
    assert.equal(result.result, "ran: echo bypassed > ran-bypass.txt");
    // It ran in the session's working directory.
    assert.equal(readFileSync(join(env.work, "ran-bypass.txt"), "utf8"), "bypassed\n");
    session.close();
  });

  test("in default mode canUseTool decides: a denial reaches the model and the turn goes on", async () => {
    const asked = [];
    const session = createSession(undefined, {
      canUseTool: async (name, input) => {
        asked.push([name, input.command]);
        return { behavior: "deny", message: "not today" };
      },
    });
    await session.send("RUN touch denied.txt");
    const { messages, result } = await drain(session);
    assert.deepEqual(asked, [["Bash", "touch denied.txt"]]);
    const done = messages.find((m) => m.type === "tool_result");
    assert.equal(done.isError, true);
    assert.match(done.content, /not today/);
    assert.equal(result.success, true);
    assert.ok(!existsSync(join(env.work, "denied.txt")));
    session.close();
  });

  test("canUseTool may allow, and replace the input", async () => {
    const session = createSession(undefined, {
      canUseTool: async () => ({ behavior: "allow", updatedInput: { command: "echo replaced > allowed.txt" } }),
    });
    await session.send("RUN echo original > allowed.txt");
    const { result } = await drain(session);
    assert.equal(result.success, true);
    assert.equal(readFileSync(join(env.work, "allowed.txt"), "utf8"), "replaced\n");
    session.close();
  });

  test("allowedTools run without asking; disallowedTools are refused without asking", async () => {
    let asked = 0;
    const canUseTool = async () => {
      asked += 1;
      return { behavior: "deny", message: "should not be asked" };
    };
    const allowed = createSession(undefined, { allowedTools: ["Bash"], canUseTool });
    await allowed.send("RUN echo yes > listed.txt");
    await drain(allowed);
    allowed.close();
    assert.equal(readFileSync(join(env.work, "listed.txt"), "utf8"), "yes\n");

    const refused = createSession(undefined, { disallowedTools: ["Bash"], canUseTool });
    const init = await refused.initialize();
    assert.ok(!init.tools.includes("Bash"));
    await refused.send("RUN touch refused.txt");
    const { messages } = await drain(refused);
    refused.close();
    assert.equal(messages.find((m) => m.type === "tool_result").isError, true);
    assert.ok(!existsSync(join(env.work, "refused.txt")));
    assert.equal(asked, 0);
  });

  test("with no callback an asked tool is denied by the SDK, as it documents", async () => {
    const session = createSession();
    await session.send("RUN touch unasked.txt");
    const { messages, result } = await drain(session);
    assert.match(messages.find((m) => m.type === "tool_result").content, /No canUseTool callback registered/);
    assert.equal(result.success, true);
    session.close();
  });

  test("the plan mode of the seed documents refuses what is not read-only", async () => {
    writeFileSync(join(env.work, "notes.txt"), "plan me\n");
    const session = createSession(undefined, { permissionMode: "plan" });
    await session.send("RUN cat notes.txt");
    const { messages } = await drain(session);
    const done = messages.find((m) => m.type === "tool_result");
    assert.equal(done.isError, true);
    assert.match(done.content, /plan mode/);
    session.close();
  });
});

describe("external tools", () => {
  test("a tool the program registers is offered to the model and run by the program", async () => {
    const calls = [];
    const react = {
      label: "React",
      name: "react",
      description: "Adds a reaction to the message",
      parameters: { type: "object", properties: { emoji: { type: "string" } }, required: ["emoji"] },
      execute: async (toolCallId, args) => {
        calls.push([toolCallId, args]);
        return { content: [{ type: "text", text: `reacted ${args.emoji}` }] };
      },
    };
    const session = createSession(undefined, { tools: [react], permissionMode: "bypassPermissions" });
    await session.send('CALL react {"emoji":"thumbs-up"}');
    const { messages, result } = await drain(session);
    session.close();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0][1], { emoji: "thumbs-up" });
    const call = messages.find((m) => m.type === "tool_call");
    assert.equal(call.toolName, "react");
    assert.equal(call.toolCallId, calls[0][0]);
    const done = messages.find((m) => m.type === "tool_result");
    assert.equal(done.content, "reacted thumbs-up");
    assert.equal(done.isError, false);
    assert.equal(result.result, "called react: reacted thumbs-up");
  });

  test("in default mode the program's canUseTool is asked first", async () => {
    let ran = 0;
    const tool = {
      label: "Ping",
      name: "ping",
      description: "Pings",
      parameters: { type: "object", properties: {} },
      execute: async () => {
        ran += 1;
        return { content: [{ type: "text", text: "pong" }] };
      },
    };
    const asked = [];
    const session = createSession(undefined, {
      tools: [tool],
      canUseTool: async (name) => {
        asked.push(name);
        return { behavior: "deny", message: "no pings" };
      },
    });
    await session.send("CALL ping {}");
    const { messages } = await drain(session);
    session.close();
    assert.deepEqual(asked, ["ping"]);
    assert.equal(ran, 0);
    assert.match(messages.find((m) => m.type === "tool_result").content, /no pings/);
  });
});

describe("the documentation's example", () => {
  test("the persistent-agent example of the SDK documentation runs unchanged", async () => {
    const script = join(import.meta.dirname, "docs-example", "build", "persistent-agent.js");
    const run = spawnSync(process.execPath, [script], { cwd: env.work, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.match(lines[0], /^Agent ID: agent-/);
    assert.deepEqual(lines.slice(1), [
      "echo: What's the best way to load a CSV?",
      "echo: Show me an example with pandas",
      "echo: What were we discussing?",
    ]);
  });
});

describe("many processes", () => {
  test("several sessions at once share one engine and each gets its own answers", async () => {
    const sessions = Array.from({ length: 4 }, () => createSession());
    const results = await Promise.all(
      sessions.map(async (session, i) => {
        await session.send(`parallel ${i}`);
        const { result } = await drain(session);
        session.close();
        return result.result;
      }),
    );
    assert.deepEqual(results, [0, 1, 2, 3].map((i) => `echo: parallel ${i}`));
  });
});
