// MSRP over WebSocket in a browser, for msrplib's relay demo: AUTH with Digest, one
// session to a peer, text both ways, files both ways with progress. One MSRP chunk per
// WebSocket message (RFC 7977). CryptoJS.MD5 (md5.js, Debian's libjs-cryptojs) does the
// Digest hashes.
"use strict";

const CHUNK = 65536;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function random(length) {
  const letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  let text = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(length))) {
    text += letters[byte % letters.length];
  }
  return text;
}

function log(text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  document.getElementById("log").appendChild(item);
  return item;
}

function status(text) {
  document.getElementById("status").textContent = text;
}

// A chunk: its start line, headers (name -> value, in order) and body (Uint8Array).
function encode(tid, startLine, headers, body, flag) {
  let head = "MSRP " + tid + " " + startLine + "\r\n";
  for (const [name, value] of headers) head += name + ": " + value + "\r\n";
  const end = "-------" + tid + flag + "\r\n";
  if (!body || body.length === 0) return encoder.encode(head + end);
  const start = encoder.encode(head + "\r\n");
  const tail = encoder.encode("\r\n" + end);
  const whole = new Uint8Array(start.length + body.length + tail.length);
  whole.set(start, 0);
  whole.set(body, start.length);
  whole.set(tail, start.length + body.length);
  return whole;
}

function decode(bytes) {
  const text = decoder.decode(bytes.subarray(0, Math.min(bytes.length, 16384)));
  const firstLine = text.slice(0, text.indexOf("\r\n")).split(" ");
  const tid = firstLine[1];
  const endLine = "-------" + tid;
  const chunk = {tid: tid, method: null, code: null, headers: {}, body: new Uint8Array(0)};
  if (/^[0-9]{3}$/.test(firstLine[2])) chunk.code = parseInt(firstLine[2], 10);
  else chunk.method = firstLine[2];
  let blank = -1;
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      blank = i;
      break;
    }
  }
  const tailLength = endLine.length + 3;  // end-line, its flag, CRLF
  const headEnd = blank >= 0 ? blank : bytes.length - tailLength;
  const lines = decoder.decode(bytes.subarray(0, headEnd)).split("\r\n").slice(1);
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) chunk.headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  chunk.flag = String.fromCharCode(bytes[bytes.length - 3]);
  if (blank >= 0) chunk.body = bytes.subarray(blank + 4, bytes.length - tailLength - 2);
  return chunk;
}

class Session {
  constructor(relayUrl, relayUri) {
    this.relayUrl = relayUrl;
    this.relayUri = relayUri;
    this.local = "msrps://" + random(8) + ".invalid:2855/" + random(12) + ";wss";
    this.waiting = new Map();    // tid -> resolve(response)
    this.incoming = new Map();   // Message-ID -> {parts, size, type, name}
  }

  open() {
    return new Promise((resolve, reject) => {
      this.socket = new WebSocket(this.relayUrl, "msrp");
      this.socket.binaryType = "arraybuffer";
      this.socket.onopen = () => resolve();
      this.socket.onerror = () => reject(new Error("no WebSocket connection"));
      this.socket.onclose = () => status("closed");
      this.socket.onmessage = (event) => this.received(new Uint8Array(event.data));
    });
  }

  request(method, headers, body, flag) {
    const tid = random(16);
    this.socket.send(encode(tid, method, headers, body, flag || "$"));
    return new Promise((resolve) => this.waiting.set(tid, resolve));
  }

  async auth(user, password) {
    const headers = [["To-Path", this.relayUri], ["From-Path", this.local]];
    let answer = await this.request("AUTH", headers);
    for (let tries = 0; answer.code === 401 && tries < 2; tries++) {
      const challenge = answer.headers["www-authenticate"];
      const param = (name) => (new RegExp(name + '="?([^",]*)"?').exec(challenge) || [])[1];
      const realm = param("realm"), nonce = param("nonce");
      const cnonce = random(16), nc = "00000001";
      const ha1 = CryptoJS.MD5(user + ":" + realm + ":" + password).toString();
      const ha2 = CryptoJS.MD5("AUTH:" + this.relayUri).toString();
      const response = CryptoJS.MD5([ha1, nonce, nc, cnonce, "auth", ha2].join(":")).toString();
      const authorization = 'Digest username="' + user + '", realm="' + realm +
        '", nonce="' + nonce + '", uri="' + this.relayUri + '", response="' + response +
        '", qop=auth, nc=' + nc + ', cnonce="' + cnonce + '", algorithm=MD5';
      answer = await this.request("AUTH", headers.concat([["Authorization", authorization]]));
    }
    if (answer.code !== 200) throw new Error("the relay refused: " + answer.code);
    this.usePath = answer.headers["use-path"];
    return this.usePath + " " + this.local;
  }

  async bind(peerPath) {
    this.toPath = this.usePath + " " + peerPath;
    const answer = await this.request("SEND", this.paths().concat([
      ["Message-ID", random(12)], ["Byte-Range", "1-0/0"]]));
    if (answer.code !== 200) throw new Error("the binding was refused: " + answer.code);
  }

  paths() {
    return [["To-Path", this.toPath], ["From-Path", this.local]];
  }

  async send(bytes, type, name, progress) {
    const messageId = random(16);
    const total = bytes.length;
    for (let start = 0; start < total || start === 0; start += CHUNK) {
      const piece = bytes.subarray(start, Math.min(total, start + CHUNK));
      const last = start + CHUNK >= total;
      const headers = this.paths().concat([["Message-ID", messageId],
        ["Byte-Range", (start + 1) + "-" + (start + piece.length) + "/" + total],
        ["Content-Type", type]]);
      if (name) headers.push(["Content-Disposition", 'attachment; filename="' + name + '"']);
      const answer = await this.request("SEND", headers, piece, last ? "$" : "+");
      if (answer.code !== 200) throw new Error("refused: " + answer.code);
      if (progress) progress(start + piece.length, total);
      if (total === 0) break;
    }
  }

  received(bytes) {
    const chunk = decode(bytes);
    if (chunk.code !== null) {
      const resolve = this.waiting.get(chunk.tid);
      this.waiting.delete(chunk.tid);
      if (resolve) resolve(chunk);
      return;
    }
    if (chunk.method !== "SEND") return;  // a REPORT: nothing to do here
    const from = chunk.headers["from-path"];
    if (!from) return;  // not addressed: nothing to answer
    const failureReport = chunk.headers["failure-report"] || "yes";
    if (failureReport === "yes") {
      this.socket.send(encode(chunk.tid, "200 OK",
        [["To-Path", from.split(" ")[0]], ["From-Path", this.local]], null, "$"));
    }
    const range = /([0-9]+)-([0-9*]+)\/([0-9*]+)/.exec(chunk.headers["byte-range"] || "1-*/*");
    if (!chunk.headers["content-type"]) return;  // a keepalive
    const id = chunk.headers["message-id"];
    let message = this.incoming.get(id);
    if (!message) {
      const name = /filename="([^"]*)"/.exec(chunk.headers["content-disposition"] || "");
      message = {parts: [], received: 0, type: chunk.headers["content-type"],
                 name: name ? name[1] : null, total: parseInt(range[3], 10)};
      this.incoming.set(id, message);
    }
    message.parts.push([parseInt(range[1], 10) - 1, chunk.body.slice()]);
    message.received += chunk.body.length;
    if (chunk.flag === "$" && message.received >= (message.total || 0)) {
      this.incoming.delete(id);
      const whole = new Uint8Array(message.received);
      for (const [offset, part] of message.parts) whole.set(part, offset);
      if (chunk.headers["success-report"] === "yes") {
        this.socket.send(encode(random(16), "REPORT",
          [["To-Path", from], ["From-Path", this.local], ["Message-ID", id],
           ["Byte-Range", "1-" + whole.length + "/" + whole.length],
           ["Status", "000 200 OK"]], null, "$"));
      }
      this.deliver(message, whole);
    }
  }

  async deliver(message, bytes) {
    if (message.type.startsWith("text/") && !message.name) {
      log("peer: " + decoder.decode(bytes), "theirs");
      return;
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
    const item = log("file " + (message.name || "(no name)") + ", " + bytes.length +
                     " bytes, sha256 " + hex + " ", "theirs file");
    const link = document.createElement("a");
    // Saved as bytes, whatever type the peer gave: opened in a tab, it must not run here.
    link.href = URL.createObjectURL(new Blob([bytes], {type: "application/octet-stream"}));
    link.download = message.name || "file";
    link.textContent = "save";
    item.appendChild(link);
  }
}

async function start() {
  const config = await (await fetch("config.json")).json();
  const session = new Session(config.websocket, config.relay);
  document.getElementById("connect").onclick = async () => {
    try {
      status("connecting");
      await session.open();
      const path = await session.auth(document.getElementById("user").value,
                                      document.getElementById("password").value);
      document.getElementById("local-path").textContent = path;
      status("logged in");
      await session.bind(document.getElementById("peer").value.trim());
      status("bound");
    } catch (error) {
      status("failed: " + error.message);
    }
  };
  document.getElementById("send").onclick = async () => {
    const field = document.getElementById("text");
    const text = field.value;
    field.value = "";
    await session.send(encoder.encode(text), "text/plain; charset=utf-8");
    log("me: " + text, "mine");
  };
  document.getElementById("send-file").onclick = async () => {
    const file = document.getElementById("file").files[0];
    if (!file) return;
    const bar = document.getElementById("progress");
    const bytes = new Uint8Array(await file.arrayBuffer());
    await session.send(bytes, file.type || "application/octet-stream", file.name,
                       (done, total) => { bar.value = total ? done / total : 1; });
    log("sent " + file.name + ", " + bytes.length + " bytes", "mine");
  };
  const query = new URLSearchParams(location.search);
  for (const name of ["user", "password", "peer"]) {
    if (query.get(name)) document.getElementById(name).value = query.get(name);
  }
}

start();
