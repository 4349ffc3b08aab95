//! What flows from ingest to the encoders: frames, audio blocks, chunks.

use std::sync::Arc;

use crate::time::{Span, Timestamp};

/// Pixel bytes shared without copying: owned, or a mapped GStreamer buffer.
#[derive(Clone)]
pub struct Pixels(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Pixels {
    pub fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        Pixels(Arc::new(bytes))
    }

    /// No pixels: a frame whose picture was let go once it was analysed
    /// (its size and time stay).
    pub fn empty() -> Self {
        Pixels::new([0u8; 0])
    }
}

impl std::ops::Deref for Pixels {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Self {
        Pixels::new(v)
    }
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels({} bytes)", self.len())
    }
}

/// A small grey image of a frame, for analyses that need luma only.
#[derive(Clone, Debug, PartialEq)]
pub struct Grey {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Grey {
    /// Grey image `width` pixels wide (BT.601 luma, integer weights): one
    /// sample at the centre of each block of the frame. Made in the
    /// streaming thread right after conversion, while the frame is in cache;
    /// reading one row in four keeps it cheap whatever the frame size, and a
    /// changed-pixel threshold well above compression noise (25 grey levels
    /// by default) makes up for the lack of averaging.
    pub fn from_rgb(rgb: &[u8], fw: usize, fh: usize, width: usize) -> Grey {
        let w = width.min(fw).max(1);
        let h = (fh * w / fw.max(1)).max(1);
        let xs: Vec<usize> = (0..w).map(|i| (2 * i + 1) * fw / (2 * w)).collect();
        let ys: Vec<usize> = (0..h).map(|i| (2 * i + 1) * fh / (2 * h)).collect();
        let mut pixels = Vec::with_capacity(w * h);
        for &y in &ys {
            let row = &rgb[y * fw * 3..(y + 1) * fw * 3];
            for &x in &xs {
                let p = &row[x * 3..x * 3 + 3];
                pixels.push(((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8);
            }
        }
        Grey {
            width: w,
            height: h,
            pixels,
        }
    }
}

/// One decoded, sampled video frame: packed RGB, `width * height * 3` bytes
/// (none after the encoders when no snapshot needs them: [`Pixels::empty`]).
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Presentation time in stream time (the frame keeps its own PTS).
    pub pts: Timestamp,
    /// How long the frame lasts in the source (0 when unknown), nanoseconds.
    pub duration: u64,
    pub width: u32,
    pub height: u32,
    pub rgb: Pixels,
    /// A grey thumbnail made at ingest while the frame was hot in cache, when
    /// an encoder asked for one (motion).
    pub grey: Option<Arc<Grey>>,
}

impl VideoFrame {
    /// The frame in grey, `width` pixels wide (the frame's width at most):
    /// the thumbnail made at ingest when it is that wide, else made now.
    pub fn grey(&self, width: usize) -> Arc<Grey> {
        match &self.grey {
            Some(g) if g.width == width.min(self.width as usize) => g.clone(),
            _ => Arc::new(Grey::from_rgb(
                &self.rgb,
                self.width as usize,
                self.height as usize,
                width,
            )),
        }
    }
}

/// A run of 16 kHz mono samples as one appsink buffer delivered them.
#[derive(Clone, Debug)]
pub struct AudioBlock {
    /// Presentation time of the first sample, in stream time.
    pub pts: Timestamp,
    pub samples: Vec<f32>,
}

/// What the synchroniser marks on a chunk; nothing is ever silently missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkFlags {
    /// Part of the audio was missing in the stream and filled with silence.
    pub audio_gap: bool,
    /// The audio branch had nothing for this span (lagging live branch, or ended).
    pub audio_missing: bool,
    /// The video branch had nothing for this span (lagging live branch).
    pub video_missing: bool,
    /// Video frames were dropped for this span because the encoders fell behind.
    pub frames_dropped: bool,
    /// Audio of this span was dropped because the encoders fell behind.
    pub audio_dropped: bool,
    /// The last chunk of the stream (its span may be shorter than the hop).
    pub last: bool,
    /// A live source was disconnected (and being reconnected) in this span.
    pub reconnecting: bool,
    /// The whole span lies in such an outage: there is nothing to see or
    /// hear (its audio is silence), so the encoders pass it by. Not a label.
    pub no_media: bool,
}

impl Chunk {
    /// The bytes it holds: its frames' pixels and its samples (an outage's
    /// shared silence counted too: an upper bound).
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(|f| f.rgb.len()).sum::<usize>()
            + self.audio.len() * std::mem::size_of::<f32>()
    }
}

impl ChunkFlags {
    /// The names of the flags that are set, for records and captions.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.audio_gap {
            v.push("audio_gap");
        }
        if self.audio_missing {
            v.push("audio_missing");
        }
        if self.video_missing {
            v.push("video_missing");
        }
        if self.frames_dropped {
            v.push("frames_dropped");
        }
        if self.audio_dropped {
            v.push("audio_dropped");
        }
        if self.reconnecting {
            v.push("reconnecting");
        }
        v
    }

    pub fn any_gap(&self) -> bool {
        self.audio_gap
            || self.audio_missing
            || self.video_missing
            || self.frames_dropped
            || self.audio_dropped
            || self.reconnecting
    }
}

/// The unit of work from sync to the encoders: one span of one stream.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub stream: Arc<str>,
    pub seq: u64,
    /// `[start, end)` in stream time; `end - start` is the hop except for the last chunk.
    pub span: Span,
    /// Frames whose PTS falls in `span`, in PTS order.
    pub frames: Vec<VideoFrame>,
    /// Exactly the 16 kHz samples of `span` (empty when the stream has no audio).
    pub audio: Arc<[f32]>,
    /// Index of the first sample of `audio` in the stream.
    pub first_sample: u64,
    pub flags: ChunkFlags,
    /// UTC of stream time zero, in nanoseconds since the Unix epoch.
    pub utc_origin: i64,
    /// The source PTS of stream time zero (the earliest first PTS of the
    /// branches): what turns a packet's PTS into stream time.
    pub pts_origin: u64,
    /// Whether the stream has an audio / a video branch at all.
    pub has_audio: bool,
    pub has_video: bool,
    /// Where the video / audio branch ended, once it has (stream time).
    pub video_end: Option<Timestamp>,
    pub audio_end: Option<Timestamp>,
    /// When the synchroniser made the chunk, for the latency metric.
    pub made_at: std::time::Instant,
}

// What stages tell each other besides chunks: a source's data and its
// failures, on their way to the synchroniser.

/// The two kinds of branch a stream can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    Video,
    Audio,
}

/// One encoded packet of a stream as its source had it (for recordings),
/// never decoded: its buffer's timestamps are in stream time.
#[derive(Clone, Debug)]
pub struct Packet {
    pub branch: Branch,
    pub buffer: gstreamer::Buffer,
    pub caps: gstreamer::Caps,
}

impl Packet {
    /// The packet's place in decoding order: its DTS, else its PTS.
    pub fn time(&self) -> Option<Timestamp> {
        self.buffer.dts_or_pts().map(|t| Timestamp(t.nseconds()))
    }

    /// Its presentation time.
    pub fn pts(&self) -> Option<Timestamp> {
        self.buffer.pts().map(|t| Timestamp(t.nseconds()))
    }

    /// A picture that decodes on its own (sound packets all do).
    pub fn keyframe(&self) -> bool {
        !self
            .buffer
            .flags()
            .contains(gstreamer::BufferFlags::DELTA_UNIT)
    }

    pub fn size(&self) -> usize {
        self.buffer.size()
    }
}

/// The media type a pad gives (`video/x-h264`, `audio/x-raw`…): its caps
/// once negotiated, else what it can give; empty when it says nothing.
pub fn pad_kind(pad: &gstreamer::Pad) -> String {
    use gstreamer::prelude::PadExt;
    pad.current_caps()
        .unwrap_or_else(|| pad.query_caps(None))
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default()
}

/// What a source tells its synchroniser. PTS are in the source's own time.
#[derive(Debug)]
pub enum Input {
    /// Which branches the source has; sent once all of its pads are known.
    Topology {
        video: bool,
        audio: bool,
        live: bool,
    },
    Frame(VideoFrame),
    Audio(AudioBlock),
    /// The container's creation time, nanoseconds since the Unix epoch.
    CreationTime(i64),
    /// Decoded video reaches this PTS (frames between the sampled ones
    /// included): where the video branch ends, sent before its EOS.
    VideoExtent(Timestamp),
    Eos(Branch),
    /// A live source was disconnected over `[from, to)` (source time, as
    /// the PTS): the chunks over it are flagged `reconnecting`.
    Outage {
        from: Timestamp,
        to: Timestamp,
    },
    /// The source has a track of this kind that nothing on this machine
    /// decodes (`what` says which); sent after the topology, in which the
    /// branch is absent. A file is analysed without it and fails; a live
    /// stream is degraded.
    Undecodable {
        branch: Branch,
        what: String,
    },
    /// The UTC of source time `pts` (a live source): from the camera's
    /// RTCP sender reports (`ntp`), else from the pipeline clock.
    Clock {
        pts: Timestamp,
        utc: i64,
        ntp: bool,
    },
}

/// What a source sends to its synchroniser.
#[derive(Debug)]
pub enum SourceMessage {
    Input(Input),
    /// The source failed; what it sent before stays valid.
    Failed(Failure),
    /// The user asked the stream to stop: end it where it is.
    Stop,
}

/// What kind of failure a stream met: the `kind` label of
/// `vigil_errors_total`, decided from what GStreamer said (its error domain
/// and code), never from the wording of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The media could not be decoded or demuxed (corrupt, truncated,
    /// impossible timestamps, a branch that yields nothing).
    Decode,
    /// Elements could not agree on a format (GStreamer's not-negotiated).
    Negotiate,
    /// The server could not be reached or read from.
    Network,
    /// The server refused the credentials.
    Auth,
    /// No such file, device, path or stream.
    NotFound,
    /// A live source ended its stream.
    Eos,
    /// A source stopped sending: a live one for `stall`, a file mid-way
    /// (with no end and no error) for 3 × `stall`.
    Stall,
    /// Anything else (a missing plugin, an element that cannot be built).
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Negotiate => "negotiate",
            FailureKind::Network => "network",
            FailureKind::Auth => "auth",
            FailureKind::NotFound => "not_found",
            FailureKind::Eos => "eos",
            FailureKind::Stall => "stall",
            FailureKind::Other => "other",
        }
    }
}

/// A failure with its kind and the one line that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
impl Chunk {
    /// Second `seq` of stream `stream` (tests): `frames` black 2×2 frames
    /// 200 ms apart and a second of silence at 16 kHz.
    pub(crate) fn test_second(stream: &str, seq: u64, frames: usize) -> Chunk {
        use crate::time::SECOND;
        let start = Timestamp(seq * SECOND);
        Chunk {
            stream: Arc::from(stream),
            seq,
            span: Span::new(start, start.saturating_add(SECOND)),
            frames: (0..frames)
                .map(|i| VideoFrame {
                    pts: start.saturating_add(i as u64 * SECOND / 5),
                    duration: 0,
                    width: 2,
                    height: 2,
                    rgb: vec![0u8; 12].into(),
                    grey: None,
                })
                .collect(),
            audio: Arc::from(vec![0.0f32; 16_000]),
            first_sample: seq * 16_000,
            flags: ChunkFlags::default(),
            utc_origin: 0,
            pts_origin: 0,
            has_audio: true,
            has_video: true,
            video_end: None,
            audio_end: None,
            made_at: std::time::Instant::now(),
        }
    }
}
