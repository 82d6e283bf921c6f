// ICE: media through a real TURN server. `cargo xtask e2e` runs a coturn on loopback with REST-API
// credentials (`use-auth-secret`) and configures backyard with it (`[ice] turn_urls`, `turn_secret`); here a host
// and a guest open the studio with `?relay=1` (relay-only ICE), so their media can only flow through coturn.
// They decode each other's video, and the selected candidate pair of every peer connection is a relay one.
// Then coturn itself refuses credentials made with the wrong secret or already expired.
// Needs BACKYARD_URL, BACKYARD_E2E_TURN_URL and BACKYARD_E2E_TURN_SECRET (`cargo xtask e2e turn` sets them).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, expectPicture, hostWithInvite, closeAll, joinAsGuest, launchParticipant, makeClips, screenshot } from '../lib/harness.mjs';

const PEOPLE = {
  host: { name: 'Tess Host', left: 'c83232', right: '32c832' },
  guest: { name: 'Rene Guest', left: '3232c8', right: 'c8c832' },
};
/** backyard's default `ice.turn_ttl_secs`. */
const TURN_TTL_SECS = 3600;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The TURN REST API credential (draft-uberti-behave-turn-rest), computed here independently of backyard. */
function restCredential(secret, username) {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/**
 * Per open peer connection on the page, from its configuration and getStats(): the selected candidate pair's
 * two ends, the types of every local candidate gathered, and what arrived over the (bundled) transport.
 */
async function iceReport(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__peerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      const stats = [...(await pc.getStats()).values()];
      const byId = (id) => stats.find((s) => s.id === id);
      const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
      const pair = transport && byId(transport.selectedCandidatePairId);
      const candidate = (id) => {
        const c = id && byId(id);
        return c ? { type: c.candidateType, address: c.address, port: c.port, url: c.url ?? null } : null;
      };
      const { iceServers, iceTransportPolicy } = pc.getConfiguration();
      out.push({
        iceServers,
        iceTransportPolicy,
        state: pc.connectionState,
        local: candidate(pair?.localCandidateId),
        remote: candidate(pair?.remoteCandidateId),
        localTypes: [...new Set(stats.filter((s) => s.type === 'local-candidate').map((s) => s.candidateType))],
        bytesReceived: transport?.bytesReceived ?? 0,
        framesDecoded: stats.filter((s) => s.type === 'inbound-rtp' && s.kind === 'video').reduce((n, s) => n + (s.framesDecoded ?? 0), 0),
      });
    }
    return out;
  });
}

/**
 * Gathers ICE candidates on `page` with only `server` and relay-only policy: the relay candidates coturn
 * allocated, and the candidate errors (a refused Allocate is reported with coturn's error code).
 */
async function gatherRelay(page, server) {
  return page.evaluate(async (server) => {
    const pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
    const relay = [];
    const errors = [];
    pc.onicecandidate = (e) => {
      if (e.candidate?.candidate.includes(' typ relay ')) relay.push(e.candidate.candidate);
    };
    pc.onicecandidateerror = (e) => errors.push({ code: e.errorCode, text: e.errorText, url: e.url });
    const complete = new Promise((resolve) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 15000);
    });
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    await complete;
    const gathering = pc.iceGatheringState;
    pc.close();
    return { relay, errors, gathering };
  }, server);
}

describe('media through TURN only (coturn, time-limited credentials)', { timeout: 180000 }, () => {
  const base = backyardUrl();
  const turnUrl = process.env.BACKYARD_E2E_TURN_URL;
  const turnSecret = process.env.BACKYARD_E2E_TURN_SECRET;
  let clipDir;
  const p = {};
  let inviteLink;

  before(async () => {
    assert.ok(turnUrl && turnSecret, 'BACKYARD_E2E_TURN_URL and BACKYARD_E2E_TURN_SECRET are set (run through `cargo xtask e2e turn`)');
    clipDir = await makeClips(PEOPLE);
  });

  after(() => closeAll(p, clipDir));

  it('a host with relay-only ICE registers, creates a broadcast and invites a guest', async () => {
    p.host = await launchParticipant('turn-host', { clip: PEOPLE.host.clip });
    const page = p.host.page;
    inviteLink = await hostWithInvite(page, {
      base,
      name: PEOPLE.host.name,
      email: `turn-host-${Date.now()}@example.test`,
      title: 'E2E through TURN',
      query: '?relay=1',
    });
  });

  it('a guest with relay-only ICE joins through the link', async () => {
    p.guest = await launchParticipant('turn-guest', { clip: PEOPLE.guest.clip });
    await joinAsGuest(p.guest, inviteLink, PEOPLE.guest.name, { selector: '.studio[data-role=guest]' });
  });

  it('each got the TURN server from joined with its own REST credential, valid for the configured TTL', async () => {
    const users = [];
    for (const x of [p.host, p.guest]) {
      const [pc] = await eventually(`${x.name}'s peer connection`, async () => {
        const pcs = await iceReport(x.page);
        return pcs.length === 1 ? pcs : false;
      });
      assert.equal(pc.iceTransportPolicy, 'relay', '?relay=1 forces relay-only ICE');
      assert.equal(pc.iceServers.length, 1, JSON.stringify(pc.iceServers));
      const [server] = pc.iceServers;
      assert.deepEqual(server.urls, [turnUrl]);
      const [expiry, user] = server.username.split(':');
      const expiresIn = Number(expiry) - Date.now() / 1000;
      assert.ok(Math.abs(expiresIn - TURN_TTL_SECS) < 120, `expires in ${expiresIn} s, want about ${TURN_TTL_SECS}`);
      assert.match(user, UUID, 'the user part is the participant id');
      assert.equal(server.credential, restCredential(turnSecret, server.username), 'base64(HMAC-SHA1(secret, username))');
      users.push(user);
    }
    assert.notEqual(users[0], users[1], 'a credential per participant');
  });

  it('both decode each other’s camera, and every selected candidate pair is relayed by coturn', async () => {
    await Promise.all([expectPicture(p.host.page, PEOPLE.guest), expectPicture(p.guest.page, PEOPLE.host)]);
    await screenshot(p.host.page, 'turn-01-host');
    await screenshot(p.guest.page, 'turn-02-guest');
    const turnAddr = new URL(turnUrl.replace(/^turn:/, 'turn://')).hostname;
    for (const x of [p.host, p.guest]) {
      const [pc] = await iceReport(x.page);
      const seen = JSON.stringify(pc);
      assert.equal(pc.state, 'connected', `${x.name}: ${seen}`);
      assert.deepEqual(pc.localTypes, ['relay'], `${x.name} gathered relay candidates only: ${seen}`);
      assert.equal(pc.local?.type, 'relay', `${x.name}'s selected local candidate is a TURN relay: ${seen}`);
      assert.equal(pc.local.address, turnAddr, `${x.name}: relayed address on the TURN server: ${seen}`);
      assert.equal(pc.local.url, turnUrl, `${x.name}: allocated on the configured server: ${seen}`);
      assert.equal(pc.remote?.type, 'host', `${x.name}: the far end is backyard's host candidate: ${seen}`);
      assert.ok(pc.bytesReceived > 0 && pc.framesDecoded > 0, `${x.name}: media arrived and decoded: ${seen}`);
    }
  });

  it('coturn refuses a credential made with the wrong secret or already expired (401), and allocates for a valid one', async () => {
    const page = p.host.page;
    const now = Math.floor(Date.now() / 1000);
    const server = (username, secret) => ({ urls: [turnUrl], username, credential: restCredential(secret, username) });
    const valid = await gatherRelay(page, server(`${now + 600}:probe`, turnSecret));
    assert.ok(valid.relay.length > 0, `a valid credential gets a relay candidate: ${JSON.stringify(valid)}`);
    const refused = {
      'wrong secret': await gatherRelay(page, server(`${now + 600}:probe`, `${turnSecret}-not`)),
      expired: await gatherRelay(page, server(`${now - 60}:probe`, turnSecret)),
    };
    for (const [what, got] of Object.entries(refused)) {
      assert.deepEqual(got.relay, [], `${what}: no relay candidate: ${JSON.stringify(got)}`);
      assert.ok(got.errors.some((e) => e.code === 401), `${what}: coturn answered 401: ${JSON.stringify(got)}`);
    }
  });
});
