"""Perception (Sec. 3): the conv encoder and its per-channel-group streams."""

from __future__ import annotations

import pytest
import torch

from amia.infra.validate import FieldError
from amia.models.encoder import ConvEncoder, EncoderConfig, StreamEncoder, build_encoder


def frames(n: int = 6, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_one_stream_is_the_plain_conv_encoder():
    assert isinstance(build_encoder(EncoderConfig(dim=8, channels=(4,)), (3, 16, 16)), ConvEncoder)


def test_each_share_of_the_state_sees_only_its_own_channels():
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(dim=9, channels=(4, 8), downsample=1, streams=((0, 1), (2,))), (3, 16, 16))
    assert isinstance(enc, StreamEncoder)
    x = frames()
    s = enc(x)
    assert s.shape == (6, 9)
    chaser_only, agent_only = x.clone(), x.clone()
    chaser_only[:, 2] = 0  # change channel 2 only: the second share (4 numbers) moves, the first (5) does not
    agent_only[:, 0] = 0
    moved_by_2, moved_by_0 = (enc(chaser_only) - s).abs().amax(0), (enc(agent_only) - s).abs().amax(0)
    assert torch.all(moved_by_2[:5] == 0) and torch.all(moved_by_2[5:] > 0)
    assert torch.all(moved_by_0[:5] > 0) and torch.all(moved_by_0[5:] == 0)
    # the state is the two streams' outputs side by side, each a ConvEncoder on its channel group
    expected = torch.cat([enc.streams[0](x[:, [0, 1]]), enc.streams[1](x[:, [2]])], 1)
    torch.testing.assert_close(s, expected, rtol=0, atol=0)
    assert enc.encode(x.reshape(2, 3, 3, 16, 16)).shape == (2, 3, 9)


def test_bad_streams_are_named():
    with pytest.raises(ValueError, match=r"encoder.streams names channels \[3\].*3 channels"):
        build_encoder(EncoderConfig(dim=8, channels=(4,), streams=((0,), (3,))), (3, 16, 16))
    with pytest.raises(FieldError, match="streams"):
        EncoderConfig(streams=((),))
    with pytest.raises(FieldError, match="streams"):
        EncoderConfig(dim=1, streams=((0,), (1,)))


def test_stream_dims_size_each_share():
    enc = build_encoder(EncoderConfig(dim=10, channels=(4,), streams=((0, 1), (2,)), stream_dims=(7, 3)), (3, 16, 16))
    assert [e.cfg.dim for e in enc.streams] == [7, 3] and enc(frames()).shape == (6, 10)
    with pytest.raises(FieldError, match=r"stream_dims=\[6, 3\].*summing to dim=10"):
        EncoderConfig(dim=10, streams=((0, 1), (2,)), stream_dims=(6, 3))
    with pytest.raises(FieldError, match="stream_dims"):
        EncoderConfig(dim=10, streams=((0, 1), (2,)), stream_dims=(10,))
