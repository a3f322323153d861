#!/usr/bin/env python3
"""Checks the fake Discord (switchboard tests/fakes) against discord.py.

Run:  tests/fakes/clients/check-discord-py.sh (makes a venv with discord.py, builds
the fake's example binary, runs this with --strict), or by hand:
      python discord_py.py [--strict] [--fake PATH]

--strict  run discord.py unmodified against the fake (stops at the first
          payload discord.py cannot parse).
default   "shim" mode: the driver fills in, on discord.py's side, each field the
          fake omits that discord.py requires (every fill is recorded and
          reported as a finding), so that the later steps can still be checked.

Writes discord.py's DEBUG log to $CHECK_OUT/discord[-strict].log, the results to
$CHECK_OUT/results[-strict].json ($CHECK_OUT defaults to a temporary directory),
and prints a summary.
Every wait is bounded; the fake is killed at the end.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback
import tempfile

import discord
from discord import app_commands
from discord.ext import commands

HERE = os.environ.get("CHECK_OUT") or os.path.join(tempfile.gettempdir(), "discord-py-check")
os.makedirs(HERE, exist_ok=True)
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
USER = "100000000000000042"
USER2 = "100000000000000043"

ap = argparse.ArgumentParser()
ap.add_argument("--strict", action="store_true")
ap.add_argument("--fake", default=os.path.join(REPO, "target/debug/examples/fake_discord"))
ap.add_argument("--heartbeat-timeout", type=float, default=6.0,
                help="discord.py's heartbeat_timeout (library default 60 s)")
ARGS = ap.parse_args()
SUFFIX = ("-strict" if ARGS.strict else "") + ("" if ARGS.heartbeat_timeout == 6.0 else f"-hb{ARGS.heartbeat_timeout:g}")
LOG_PATH = os.path.join(HERE, f"discord{SUFFIX}.log")
RESULTS_PATH = os.path.join(HERE, f"results{SUFFIX}.json")

# ---------------------------------------------------------------- logging
root = logging.getLogger()
root.setLevel(logging.DEBUG)
fh = logging.FileHandler(LOG_PATH, mode="w")
fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
root.addHandler(fh)
for noisy in ("asyncio",):
    logging.getLogger(noisy).setLevel(logging.INFO)

LOGGED_PROBLEMS = []  # (level, logger, message, exc text)


class ProblemCatcher(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING or record.exc_info:
            exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            LOGGED_PROBLEMS.append((record.levelname, record.name, record.getMessage(), exc))


root.addHandler(ProblemCatcher())

RESULTS = []  # {item, check, ok, detail}
SHIM_FILLS = []  # {where, field, value}
ERRORS = []  # exceptions caught in discord.py handlers


def check(item, name, ok, detail=""):
    RESULTS.append({"item": item, "check": name, "ok": bool(ok), "detail": str(detail)[:800]})
    print(f"[{'PASS' if ok else 'FAIL'}] {item}: {name}" + (f" -- {str(detail)[-500:]}" if detail and not ok else ""), flush=True)


def shim_fill(where, obj, key, value):
    """Sets obj[key]=value if missing, recording it (shim mode only)."""
    if key not in obj:
        obj[key] = value
        if not any(r["where"] == where and r["field"] == key for r in SHIM_FILLS):
            SHIM_FILLS.append({"where": where, "field": key, "value": value})


# ---------------------------------------------------------------- shims
if not ARGS.strict:
    import discord.http as dhttp
    import discord.gateway as dgw
    import discord.webhook.async_ as dwh

    _orig_request = dhttp.HTTPClient.request

    async def request(self, route, **kw):
        if route.method == "GET" and route.path == "/oauth2/applications/@me":
            # the fake serves only GET /applications/@me (404 here): ask that one instead
            rec = {"where": "GET /oauth2/applications/@me", "field": "<route>", "value": "404 from the fake; used GET /applications/@me"}
            if rec not in SHIM_FILLS:
                SHIM_FILLS.append(rec)
            route = dhttp.Route("GET", "/applications/@me")
        data = await _orig_request(self, route, **kw)
        if route.method == "GET" and route.path == "/applications/@me" and isinstance(data, dict):
            for k, v in (("description", ""), ("icon", None), ("bot_require_code_grant", False),
                         ("verify_key", "0" * 64),
                         ("owner", {"id": "100000000000000001", "username": "owner", "discriminator": "0",
                                    "avatar": None, "global_name": None})):
                shim_fill("GET /applications/@me response", data, k, v)
        return data

    dhttp.HTTPClient.request = request

    _orig_wh_request = dwh.AsyncWebhookAdapter.request

    def fix_message(where, m):
        md = m.get("interaction_metadata")
        if isinstance(md, dict) and isinstance(md.get("user"), dict):
            u = md["user"]
            for k, v in (("username", f"user{u.get('id')}"), ("discriminator", "0"), ("avatar", None)):
                shim_fill(where + " interaction_metadata.user", u, k, v)

    async def wh_request(self, route, session, **kw):
        data = await _orig_wh_request(self, route, session, **kw)
        if isinstance(data, dict) and "channel_id" in data and "author" in data:
            fix_message(f"{route.method} {route.path} response (message)", data)
        if route.method == "POST" and route.path.endswith("/callback") and not data:
            iid = str(route.url).split("/interactions/")[1].split("/")[0]
            data = {"interaction": {"id": iid, "type": 2}}
            rec = {"where": "POST /interactions/{id}/{token}/callback?with_response=1 response",
                   "field": "<whole body>", "value": "204 empty -> {interaction:{id,type,...}, resource?}"}
            if rec not in SHIM_FILLS:
                SHIM_FILLS.append(rec)
        return data

    dwh.AsyncWebhookAdapter.request = wh_request

    _orig_received = dgw.DiscordWebSocket.received_message

    def fix_channel(where, c, index):
        if c.get("type") in (0, 2, 4, 5, 13, 15, 16):
            shim_fill(where + " channel", c, "position", index)

    async def received_message(self, msg):
        if isinstance(msg, str):
            frame = json.loads(msg)
            t, d = frame.get("t"), frame.get("d")
            if t == "GUILD_CREATE" and isinstance(d, dict):
                for i, c in enumerate(d.get("channels", [])):
                    fix_channel("GUILD_CREATE channels[]", c, i)
            if t in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and isinstance(d, dict):
                fix_message(t, d)
            if t == "INTERACTION_CREATE" and isinstance(d, dict) and isinstance(d.get("message"), dict):
                fix_message("INTERACTION_CREATE message", d["message"])
            if t == "INTERACTION_CREATE" and isinstance(d, dict):
                shim_fill("INTERACTION_CREATE", d, "attachment_size_limit", 10 * 1024 * 1024)
                if isinstance(d.get("channel"), dict):
                    fix_channel("INTERACTION_CREATE channel", d["channel"], 0)
            msg = json.dumps(frame)
        return await _orig_received(self, msg)

    dgw.DiscordWebSocket.received_message = received_message


# ---------------------------------------------------------------- the fake
class Fake:
    def __init__(self, path):
        self.path = path
        self.proc = None

    async def start(self):
        self.stderr = open(os.path.join(HERE, "fake.stderr"), "w")
        self.proc = await asyncio.create_subprocess_exec(
            self.path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self.stderr,
            limit=64 * 1024 * 1024)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        return json.loads(line)

    async def cmd(self, line, timeout=10):
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()
        out = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not out:
            raise RuntimeError(f"fake closed stdout after {line!r}")
        return json.loads(out)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            try:
                self.proc.stdin.write(b"quit\n")
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 3)
            except Exception:
                pass
            if self.proc.returncode is None:
                self.proc.kill()
                await asyncio.wait_for(self.proc.wait(), 5)


async def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = pred()
        if r:
            return r
        await asyncio.sleep(step)
    return pred()


# ---------------------------------------------------------------- main
async def main():
    fake = Fake(ARGS.fake)
    info = await fake.start()
    print("fake:", info, flush=True)
    guild_id, channels = int(info["guild"]), [int(c) for c in info["channels"]]
    C1, C2 = info["channels"]

    discord.http.Route.BASE = info["api_url"] + "/api/v10"
    # discord.py 2.x's unsharded Client never calls GET /gateway/bot: it connects to
    # DiscordWebSocket.DEFAULT_GATEWAY (wss://gateway.discord.gg/). Point that at the fake,
    # using the URL the fake's GET /gateway/bot answers.
    import urllib.request
    import yarl
    req = urllib.request.Request(info["api_url"] + "/api/v10/gateway/bot",
                                 headers={"Authorization": "Bot " + info["token"]})
    with urllib.request.urlopen(req, timeout=5) as resp:
        gw = json.loads(resp.read())
    check("a", "GET /gateway/bot answers ws://127.0.0.1", gw["url"].startswith("ws://127.0.0.1:"), gw)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gw["url"])

    # safety net: never let discord.py open a socket anywhere but 127.0.0.1
    _orig_ws_connect = discord.http.HTTPClient.ws_connect

    async def ws_connect(self, url, **kw):
        if yarl.URL(str(url)).host != "127.0.0.1":
            raise RuntimeError(f"driver refuses non-local websocket {url}")
        return await _orig_ws_connect(self, url, **kw)

    discord.http.HTTPClient.ws_connect = ws_connect

    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents, heartbeat_timeout=ARGS.heartbeat_timeout)

    ready = asyncio.Event()
    messages = {}  # id -> Message
    msg_events = {}
    resumed = asyncio.Event()
    handled = {}  # name -> dict

    @bot.event
    async def on_ready():
        ready.set()

    @bot.event
    async def on_resumed():
        resumed.set()

    @bot.event
    async def on_message(message):
        messages[message.id] = message
        msg_events.setdefault(message.id, asyncio.Event()).set()

    @bot.event
    async def on_error(event, *a, **k):
        ERRORS.append(("on_error " + event, traceback.format_exc()))

    async def wait_message(mid, timeout=5):
        mid = int(mid)
        ev = msg_events.setdefault(mid, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return messages.get(mid)

    # ---- app commands
    @bot.tree.command(name="echo", description="Echo text back")
    @app_commands.describe(text="What to echo")
    async def echo(interaction: discord.Interaction, text: str):
        rec = handled.setdefault("echo", {})
        rec["text"] = text
        rec["user"] = interaction.user.id
        rec["channel_type"] = type(interaction.channel).__name__
        rec["guild"] = interaction.guild_id
        try:
            r = await interaction.response.send_message(f"echo: {text}")
            rec["callback_response"] = repr(r)
            rec["ok"] = True
        except Exception:
            rec["error"] = traceback.format_exc()
        rec["done"] = True

    @bot.tree.command(name="slow", description="Deferred answer")
    async def slow(interaction: discord.Interaction, text: str):
        rec = handled.setdefault("slow", {})
        rec["text"] = text
        for step, coro in (
            ("defer", lambda: interaction.response.defer()),
            ("edit_original", lambda: interaction.edit_original_response(content=f"slow done: {text}")),
            ("followup", lambda: interaction.followup.send(f"secret {text}", ephemeral=True)),
        ):
            try:
                rec[step] = repr(await coro())
            except Exception:
                rec[step + "_error"] = traceback.format_exc()
        rec["done"] = True

    @bot.tree.command(name="ping", description="No options")
    async def ping(interaction: discord.Interaction):
        await interaction.response.send_message("pong", ephemeral=True)
        handled.setdefault("ping", {})["done"] = True

    @bot.tree.error
    async def on_app_command_error(interaction, error):
        ERRORS.append(("app_command", "".join(traceback.format_exception(error))))

    # ---- a view
    class Buttons(discord.ui.View):
        def __init__(self):
            super().__init__(timeout=120)

        @discord.ui.button(label="Defer", custom_id="btn-defer", style=discord.ButtonStyle.primary)
        async def b_defer(self, interaction, button):
            rec = handled.setdefault("btn-defer", {})
            rec["user"] = interaction.user.id
            rec["message"] = interaction.message.id if interaction.message else None
            try:
                rec["resp"] = repr(await interaction.response.defer())
                rec["ok"] = True
            except Exception:
                rec["error"] = traceback.format_exc()
            # the usual follow-on to a deferred update: edit the message the button sits on
            try:
                await interaction.edit_original_response(content="edited after defer")
                rec["edit_after_defer_ok"] = True
            except Exception:
                rec["edit_after_defer_error"] = traceback.format_exc()
            rec["done"] = True

        @discord.ui.button(label="Edit", custom_id="btn-edit", style=discord.ButtonStyle.secondary)
        async def b_edit(self, interaction, button):
            rec = handled.setdefault("btn-edit", {})
            try:
                rec["resp"] = repr(await interaction.response.edit_message(content="clicked!", view=self))
                rec["ok"] = True
            except Exception:
                rec["error"] = traceback.format_exc()
            rec["done"] = True

        async def on_error(self, interaction, error, item):
            ERRORS.append(("view", "".join(traceback.format_exception(error))))

    def alive(section):
        if bot_task.done():
            raise RuntimeError(f"discord.py's bot.start() task ended before section {section}")

    async def sessions():
        return (await fake.cmd("dump", 20))["sessions"]

    bot_task = asyncio.create_task(bot.start(info["token"]))

    def bot_died(t):
        if not t.cancelled() and t.exception() is not None and ready.is_set():
            tb = "".join(traceback.format_exception(t.exception()))
            ERRORS.append(("bot.start() died", tb))
            print("!!! bot.start() died:\n" + tb[-2500:], flush=True)

    bot_task.add_done_callback(bot_died)
    try:
        # ---------------------------------------------------------- a
        done, _ = await asyncio.wait({bot_task, asyncio.create_task(ready.wait())}, timeout=20,
                                     return_when=asyncio.FIRST_COMPLETED)
        if bot_task in done:
            exc = bot_task.exception()
            check("a", "bot.start() runs until READY", False,
                  "".join(traceback.format_exception(exc)) if exc else "returned")
            return
        check("a", "on_ready fired", ready.is_set())
        if not ready.is_set():
            return
        g = bot.get_guild(guild_id)
        check("a", "bot.guilds contains the guild", g is not None and g in bot.guilds, bot.guilds)
        if g:
            tc = sorted(c.id for c in g.text_channels)
            check("a", "guild has its two text channels", tc == sorted(channels), tc)
            check("a", "guild.me (bot's own member) present", g.me is not None,
                  "guild.me is None: GUILD_CREATE.members lacks the bot's member")
            check("a", "guild.default_role (@everyone) present", g.default_role is not None,
                  "GUILD_CREATE.roles lacks the @everyone role (id == guild id)")
        check("a", "bot.user id/name", bot.user and str(bot.user.id) == "900000000000000001", bot.user)
        check("a", "application_id from READY", bot.application_id == 900000000000000002, bot.application_id)

        # ---------------------------------------------------------- b
        alive("b")
        r = await fake.cmd(f"dm {USER} hello from dm")
        m = await wait_message(r["id"])
        check("b", "DM arrives as on_message", m is not None)
        if m:
            check("b", "DM: channel is DMChannel", isinstance(m.channel, discord.DMChannel), type(m.channel))
            check("b", "DM: author id", m.author.id == int(USER), m.author)
            check("b", "DM: content", m.content == "hello from dm", repr(m.content))
            check("b", "DM: no guild", m.guild is None, m.guild)
            check("b", "DM: not mentioned", bot.user not in m.mentions, m.mentions)
            dm_msg = m
        r = await fake.cmd(f"say {C1} {USER} plain guild text")
        m = await wait_message(r["id"])
        check("b", "guild say arrives as on_message", m is not None)
        if m:
            check("b", "say: channel is TextChannel", isinstance(m.channel, discord.TextChannel), type(m.channel))
            check("b", "say: author is Member with id", isinstance(m.author, discord.Member) and m.author.id == int(USER),
                  repr(m.author))
            check("b", "say: content", m.content == "plain guild text", repr(m.content))
            check("b", "say: not mentioned", bot.user not in m.mentions, m.mentions)
            check("b", "say: guild", m.guild and m.guild.id == guild_id, m.guild)
            say_msg = m
        r = await fake.cmd(f"mention {C1} {USER2} are you there")
        m = await wait_message(r["id"])
        check("b", "mention arrives as on_message", m is not None)
        if m:
            check("b", "mention: bot.user in message.mentions", bot.user in m.mentions, m.mentions)
            check("b", "mention: content", m.content == "<@900000000000000001> are you there", repr(m.content))
            check("b", "mention: author id", m.author.id == int(USER2), m.author)
            check("b", "mention: raw_mentions", m.raw_mentions == [900000000000000001], m.raw_mentions)
            mention_msg = m

        # ---------------------------------------------------------- c
        alive("c")
        ch = bot.get_channel(channels[0])
        sent = {}
        for name, coro in (
            ("send", lambda: ch.send("plain reply")),
            ("reference", lambda: ch.send("a reply", reference=say_msg)),
            ("message.reply", lambda: mention_msg.reply("replying via reply()")),
            ("allowed_mentions none", lambda: ch.send(f"hi <@{USER}> @everyone",
                                                       allowed_mentions=discord.AllowedMentions.none())),
            ("nonce", lambda: ch.send("with nonce", nonce="nonce-123")),
            ("nonce again (enforce_nonce dedup)", lambda: ch.send("with nonce", nonce="nonce-123")),
            ("dm send", lambda: dm_msg.channel.send("dm answer")),
            ("view", lambda: ch.send("pick one", view=Buttons())),
        ):
            try:
                sent[name] = await asyncio.wait_for(coro(), 10)
                check("c", f"channel.send: {name}", isinstance(sent[name], discord.Message), sent[name])
            except Exception:
                check("c", f"channel.send: {name}", False, traceback.format_exc())
        # things real Discord accepts
        try:
            d2 = await asyncio.wait_for(bot.create_dm(discord.Object(id=int(USER2))), 10)
            check("c", "bot.create_dm(new user) (POST /users/@me/channels)", isinstance(d2, discord.DMChannel), d2)
            m2 = await asyncio.wait_for(d2.send("hello new user"), 10)
            check("c", "send in the new DM", isinstance(m2, discord.Message), m2)
        except Exception:
            check("c", "bot.create_dm(new user) (POST /users/@me/channels)", False, traceback.format_exc())
        try:
            await asyncio.wait_for(ch.send(embed=discord.Embed(title="only an embed")), 10)
            check("c", "send an embed-only message", True)
        except Exception:
            check("c", "send an embed-only message", False, traceback.format_exc())
        try:
            lv = discord.ui.View()
            lv.add_item(discord.ui.Button(label="docs", url="https://example.com/docs"))
            await asyncio.wait_for(ch.send("a link button", view=lv), 10)
            check("c", "send a link button (style 5, url, no custom_id)", True)
        except Exception:
            check("c", "send a link button (style 5, url, no custom_id)", False, traceback.format_exc())
        if "reference" in sent:
            s = sent["reference"]
            check("c", "reply: message.reference set", s.reference and s.reference.message_id == say_msg.id, s.reference)
            check("c", "reply: type is reply", s.type == discord.MessageType.reply, s.type)
        if "nonce" in sent and "nonce again (enforce_nonce dedup)" in sent:
            check("c", "enforce_nonce: same nonce returns same message",
                  sent["nonce"].id == sent["nonce again (enforce_nonce dedup)"].id,
                  (sent["nonce"].id, sent["nonce again (enforce_nonce dedup)"].id))
            check("c", "nonce echoed on the message", str(sent["nonce"].nonce) == "nonce-123", sent["nonce"].nonce)
        if "send" in sent:
            try:
                e = await asyncio.wait_for(sent["send"].edit(content="edited reply"), 10)
                check("c", "msg.edit(content=)", e.content == "edited reply" and e.edited_at is not None,
                      (e.content, e.edited_at))
            except Exception:
                check("c", "msg.edit(content=)", False, traceback.format_exc())
            try:
                await asyncio.wait_for(sent["send"].delete(), 10)
                check("c", "msg.delete()", True)
            except Exception:
                check("c", "msg.delete()", False, traceback.format_exc())
        try:
            async with ch.typing():
                await asyncio.sleep(0.3)
            check("c", "async with channel.typing()", True)
        except Exception:
            check("c", "async with channel.typing()", False, traceback.format_exc())
        # history round trip (GET /channels/{id}/messages)
        try:
            hist = [m async for m in ch.history(limit=5)]
            check("c", "channel.history(limit=5)", len(hist) >= 1, len(hist))
        except Exception:
            check("c", "channel.history(limit=5)", False, traceback.format_exc())
        dump = await fake.cmd("dump", 20)
        calls = dump["calls"]
        posts = [c for c in calls if c["method"] == "POST" and c["path"].endswith("/messages")]
        am = [c["body"].get("allowed_mentions") for c in posts if "@everyone" in str(c["body"].get("content"))]
        check("c", "allowed_mentions none sent as {parse: []}", am and am[0] == {"parse": []}, am)
        nb = [c["body"] for c in posts if c["body"].get("nonce")]
        check("c", "nonce + enforce_nonce in body", nb and nb[0].get("enforce_nonce") is True, nb[:1])
        check("c", "typing POSTed", any(c["path"].endswith("/typing") for c in calls))
        vb = [c["body"] for c in posts if c["body"].get("content") == "pick one"]
        check("c", "view components sent with custom_ids",
              vb and {b["custom_id"] for b in vb[0]["components"][0]["components"]} == {"btn-defer", "btn-edit"},
              vb[:1])

        # ---------------------------------------------------------- d
        alive("d")
        try:
            synced = await asyncio.wait_for(bot.tree.sync(), 10)
            check("d", "tree.sync() global", len(synced) == 3, synced)
            check("d", "synced commands have ids", all(c.id for c in synced), [c.id for c in synced])
        except Exception:
            check("d", "tree.sync() global", False, traceback.format_exc())
        dump = await fake.cmd("dump", 20)
        puts = [c for c in dump["calls"] if c["method"] == "PUT"]
        check("d", "PUT /applications/{id}/commands", puts and puts[0]["path"] == "/api/v10/applications/900000000000000002/commands",
              [p["path"] for p in puts])
        cmds = dump["commands"] or []
        echo_cmd = next((c for c in cmds if c["name"] == "echo"), None)
        check("d", "echo registered with a string option",
              echo_cmd and echo_cmd["options"][0]["type"] == 3 and echo_cmd["options"][0]["name"] == "text", echo_cmd)

        r = await fake.cmd(f"slash {C1} {USER} echo text=hello")
        await wait_for(lambda: handled.get("echo", {}).get("done"), 8)
        rec = handled.get("echo", {})
        check("d", "slash /echo dispatched to the command", rec.get("done"), rec)
        check("d", "/echo option parsed", rec.get("text") == "hello", rec.get("text"))
        check("d", "/echo interaction.user", rec.get("user") == int(USER), rec.get("user"))
        check("d", "/echo channel is TextChannel", rec.get("channel_type") == "TextChannel", rec.get("channel_type"))
        check("d", "/echo response.send_message without exception", rec.get("ok"), rec.get("error"))

        r = await fake.cmd(f"slash {C1} {USER} slow text=later")
        await wait_for(lambda: handled.get("slow", {}).get("done"), 10)
        rec = handled.get("slow", {})
        check("d", "slash /slow dispatched", rec.get("done"), rec)
        for step in ("defer", "edit_original", "followup"):
            check("d", f"/slow {step} without exception", step in rec, rec.get(step + "_error"))
        r = await fake.cmd(f"dm {USER} ping")  # keep the DM channel cached
        await wait_message(r["id"])
        dmc = dm_msg.channel.id
        r = await fake.cmd(f"slash {dmc} {USER} ping")
        await wait_for(lambda: handled.get("ping", {}).get("done"), 8)
        check("d", "slash /ping in a DM answered (ephemeral)", handled.get("ping", {}).get("done"),
              [e for e in ERRORS if e[0] == "app_command"][-1:])
        dump = await fake.cmd("dump", 20)
        bm = dump["bot_messages"]
        check("d", "fake stored /echo response", any(m["content"] == "echo: hello" for m in bm))
        check("d", "fake stored /slow edited original", any(m["content"] == "slow done: later" for m in bm))
        check("d", "fake stored ephemeral follow-up with flags 64",
              any(m["content"] == "secret later" and m["flags"] & 64 for m in bm))

        # ---------------------------------------------------------- e
        alive("e")
        view_msg = sent.get("view")
        if view_msg:
            r = await fake.cmd(f"click {C1} {USER} {view_msg.id} btn-defer")
            await wait_for(lambda: handled.get("btn-defer", {}).get("done"), 8)
            rec = handled.get("btn-defer", {})
            check("e", "button btn-defer callback fired", rec.get("done"), rec)
            check("e", "btn-defer: interaction.message is the view message", rec.get("message") == view_msg.id, rec)
            check("e", "btn-defer: response.defer() without exception", rec.get("ok"), rec.get("error"))
            check("e", "btn-defer: edit_original_response after defer (edits the button's message)",
                  rec.get("edit_after_defer_ok"), rec.get("edit_after_defer_error"))
            r = await fake.cmd(f"click {C1} {USER} {view_msg.id} btn-edit")
            await wait_for(lambda: handled.get("btn-edit", {}).get("done"), 8)
            rec = handled.get("btn-edit", {})
            check("e", "button btn-edit callback fired", rec.get("done"), rec)
            check("e", "btn-edit: response.edit_message without exception", rec.get("ok"), rec.get("error"))
            dump = await fake.cmd("dump", 20)
            vm = next((m for m in dump["bot_messages"] if m["id"] == str(view_msg.id)), None)
            check("e", "fake shows the edit", vm and vm["content"] == "clicked!", vm and vm["content"])
            cb = [c["body"].get("type") for c in dump["calls"] if c["path"].endswith("/callback")]
            check("e", "callback types 6 then 7", cb[-2:] == [6, 7], cb)
        else:
            check("e", "view message exists", False)

        # ---------------------------------------------------------- f
        alive("f")
        s0 = await sessions()
        resumed.clear()
        await fake.cmd("disconnect 4000")
        await wait_for(lambda: resumed.is_set(), 15)
        s1 = await sessions()
        check("f", "4000: on_resumed fired", resumed.is_set(), (s0, s1))
        check("f", "4000: fake counted a resume, no new identify", s1[2] == s0[2] + 1 and s1[1] == s0[1], (s0, s1))
        r = await fake.cmd(f"say {C2} {USER} after 4000")
        m = await wait_message(r["id"], 8)
        check("f", "4000: new message arrives after resume", m and m.content == "after 4000")

        s0 = await sessions()
        ready.clear()
        resumed.clear()
        await fake.cmd("disconnect 4009")
        await wait_for(lambda: ready.is_set() or resumed.is_set(), 20)
        await asyncio.sleep(0.5)
        s1 = await sessions()
        check("f", "4009: discord.py re-identifies (fake identifies count rises)", s1[1] > s0[1],
              f"sessions (conn, identify, resume) before {s0} after {s1}; ready={ready.is_set()} resumed={resumed.is_set()}")
        r = await fake.cmd(f"say {C2} {USER} after 4009")
        m = await wait_message(r["id"], 8)
        check("f", "4009: new message arrives afterwards", m and m.content == "after 4009")

        s0 = await sessions()
        ready.clear()
        resumed.clear()
        t0 = time.monotonic()
        await fake.cmd("silent")
        r = await fake.cmd(f"say {C2} {USER} during silence")
        await wait_for(lambda: resumed.is_set() or ready.is_set(), ARGS.heartbeat_timeout * 3 + 10)
        dt = time.monotonic() - t0
        s1 = await sessions()
        check("f", f"silent: discord.py reconnects (heartbeat_timeout={ARGS.heartbeat_timeout}s)",
              s1[0] > s0[0] and (resumed.is_set() or ready.is_set()),
              f"after {dt:.1f}s sessions {s0}->{s1} resumed={resumed.is_set()} ready={ready.is_set()}")
        print(f"silent: reconnected after {dt:.1f}s, sessions {s0} -> {s1}", flush=True)
        m = await wait_message(r["id"], 8)
        check("f", "silent: message sent during silence delivered after reconnect", m is not None)
        r = await fake.cmd(f"say {C2} {USER} after silence")
        m = await wait_message(r["id"], 8)
        check("f", "silent: new message arrives after reconnect", m is not None)
    finally:
        try:
            await asyncio.wait_for(bot.close(), 10)
        except Exception:
            pass
        if not bot_task.done():
            bot_task.cancel()
        try:
            await asyncio.wait_for(bot_task, 5)
        except BaseException:
            pass
        await fake.stop()

    # ---------------------------------------------------------- g
    check("g", "no exceptions caught in discord.py handlers", not ERRORS, ERRORS[:3])
    problems = [p for p in LOGGED_PROBLEMS if p[3] or p[0] in ("ERROR", "CRITICAL")]
    check("g", "no ERROR/exception records in discord.py log", not problems,
          [(p[1], p[2], p[3][-600:]) for p in problems[:3]])


def run():
    try:
        asyncio.run(asyncio.wait_for(main(), 240))
    except Exception:
        check("driver", "driver completed", False, traceback.format_exc())
    with open(RESULTS_PATH, "w") as f:
        json.dump({"results": RESULTS, "shim_fills": SHIM_FILLS, "errors": ERRORS,
                   "log_problems": LOGGED_PROBLEMS, "discord.py": discord.__version__}, f, indent=1)
    failed = [r for r in RESULTS if not r["ok"]]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed  (discord.py {discord.__version__},"
          f" {'strict' if ARGS.strict else 'shim'} mode)")
    if SHIM_FILLS:
        print("fields the driver had to fill in for discord.py (fake omits them):")
        for s in SHIM_FILLS:
            print("  ", s)
    for p in LOGGED_PROBLEMS:
        print("log:", p[0], p[1], p[2][:200], ("\n" + p[3][-1500:]) if p[3] else "")
    print("log:", LOG_PATH, " results:", RESULTS_PATH)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run()
