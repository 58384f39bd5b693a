"""The media side of a call: one RTCPeerConnection per leg, Opus forwarded both ways and
tapped into the recorder, without decoding or re-encoding (see passthrough.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import SessionDescription

from gateway.calls.passthrough import PacketTrack, PassthroughQueue, install_passthrough
from gateway.calls.rtpsend import AnswerError, DirectRtpSender, DirectSendUnavailable, rtp_head_parameters
from recording.service import ActiveRecording

log = logging.getLogger(__name__)

VISITOR, AGENT = 0, 1  # leg index = recording stream index ("caller", "agent")


class SdpError(ValueError):
    pass


def check_offer(offer_sdp: str) -> None:
    """Refuse (SdpError) an offer that DTLS-SRTP cannot secure: one that aiortc cannot parse,
    or with a media section without a DTLS fingerprint (`a=fingerprint`, in the section or at
    session level). aiortc itself accepts such an offer and fails later, in a task, when the
    DTLS transport starts."""
    try:
        desc = SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise SdpError(f"the offer could not be parsed: {exc}") from None
    for media in desc.media:
        if media.dtls is None or not media.dtls.fingerprints:
            raise SdpError(f"the offer's {media.kind} section has no DTLS fingerprint (a=fingerprint): "
                           "DTLS-SRTP is required")


class Leg:
    def __init__(self, pc: RTCPeerConnection, outbound: PacketTrack) -> None:
        self.pc = pc
        self.outbound = outbound  # what this leg's endpoint hears (aiortc's sender; idle when direct)
        self.direct: DirectRtpSender | None = None  # the same, written straight to the leg's DTLS
        self.inbound: PassthroughQueue | None = None  # what this leg's endpoint says

    def forward(self, payload: bytes, ts: int) -> None:
        """Send one Opus packet to this leg's endpoint."""
        if self.direct is not None:
            try:
                self.direct.send(payload, ts)
                return
            except DirectSendUnavailable as exc:
                log.error("direct RTP sending stopped (%s); falling back to aiortc's sender", exc)
                self.direct = None
        self.outbound.push(payload, ts)

    @property
    def sent(self) -> int:
        return self.outbound.sent + (self.direct.sent if self.direct is not None else 0)


class CallMedia:
    def __init__(self, rtc_config: RTCConfiguration, on_leg_down: Callable[[int], None],
                 direct: bool = True) -> None:
        self._rtc_config = rtc_config
        self._direct = direct  # forward with DirectRtpSender (else through aiortc's sender)
        self._on_leg_down = on_leg_down
        self.legs: dict[int, Leg] = {}
        self.recorder: ActiveRecording | None = None

    def _sink(self, index: int) -> Callable[[bytes, int], None]:
        other = AGENT if index == VISITOR else VISITOR

        def sink(payload: bytes, ts: int) -> None:
            peer = self.legs.get(other)
            if peer is not None:
                peer.forward(payload, ts)
            if self.recorder is not None:
                self.recorder.add(index, payload, ts)

        return sink

    async def answer(self, index: int, offer_sdp: str) -> str:
        """Terminate the leg `index` (its endpoint's offer, ICE gathered); return our answer."""
        if index in self.legs:
            raise SdpError("this leg is already connected")
        check_offer(offer_sdp)
        pc = RTCPeerConnection(self._rtc_config)
        outbound = PacketTrack()
        leg = Leg(pc, outbound)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed") and self.legs.get(index) is leg:
                self._on_leg_down(index)

        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except Exception as exc:
                raise SdpError(f"the offer could not be used: {exc}") from None
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if len(audio) != 1 or any(t.kind != "audio" for t in pc.getTransceivers()):
                raise SdpError("the offer must have exactly one audio section and nothing else")
            opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
            audio[0].setCodecPreferences(opus)
            pc.addTrack(outbound)
            leg.inbound = install_passthrough(pc, self._sink(index))
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:
                raise SdpError(f"no answer possible (Opus is required): {exc}") from None
            if "opus/48000" not in pc.localDescription.sdp.lower():
                raise SdpError("Opus is required")
            if self._direct:
                try:
                    leg.direct = DirectRtpSender(audio[0].sender.transport,
                                                 *rtp_head_parameters(pc.localDescription.sdp))
                except (AnswerError, DirectSendUnavailable) as exc:
                    log.error("direct RTP sending unavailable (%s); using aiortc's sender", exc)
        except BaseException:
            outbound.stop()
            with contextlib.suppress(Exception):
                await pc.close()
            raise
        self.legs[index] = leg
        return str(pc.localDescription.sdp)

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for idx, name in ((VISITOR, "visitor"), (AGENT, "agent")):
            leg = self.legs.get(idx)
            if leg is not None:
                out[f"{name}_in"] = leg.inbound.packets if leg.inbound else 0
                out[f"{name}_out"] = leg.sent
        return out

    async def close(self) -> None:
        legs, self.legs = list(self.legs.values()), {}
        for leg in legs:
            leg.outbound.stop()
            with contextlib.suppress(Exception):
                await leg.pc.close()
