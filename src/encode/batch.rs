//! Batching across streams: one inference worker per model, fed by every
//! stream's encoder.
//!
//! Each stream's encoder prepares its inputs (letterbox, log-mel, …) on its
//! own thread and hands them to the model's [`Batcher`] through a
//! [`BatchClient`]; the worker gathers requests until it holds `max_batch`
//! items, every client has a request waiting, or `max_wait` has passed since
//! the first, runs the session once per `max_batch` items, and answers each
//! request with its own items' outputs.
//!
//! Streams are served in turn, not in arrival order: each client's requests
//! wait in a queue of their own, and a batch takes one request from each
//! client that has one, round after round, so a busy camera with a deep
//! backlog cannot hold back a quiet one (see [`Fair`]). The worker owns the session: no lock
//! is held around `run`. Because a batch of N gives what N runs of batch 1
//! give (the model tests check it), how requests happen to be grouped never
//! changes what a stream's records say.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use ort::session::Session;
use ort::value::Tensor;

use crate::config::BatchConfig;
use crate::cpu::{self, PoolClocks};
use crate::encode::runtime;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// One item's outputs, in the order the batcher was given their names.
pub type ItemOutputs = Vec<Vec<f32>>;
/// One item's inputs, in the order of [`BatchModel::inputs`].
pub type ItemInputs = Vec<Vec<f32>>;
/// The shape of one item of each input, for a model whose inputs take
/// more than one (NanoDet's side): items of one shape run together.
pub type ItemShapes = Arc<[Vec<usize>]>;

struct Request {
    /// Which client sent it.
    client: usize,
    /// Where the client is charged the CPU time its items took.
    spent: Arc<AtomicU64>,
    items: Vec<ItemInputs>,
    /// Its items' shapes, when not the ports' own.
    shapes: Option<ItemShapes>,
    reply: Sender<Result<Vec<ItemOutputs>>>,
}

/// One item on its way to a run, with its request's shapes.
struct Item {
    inputs: ItemInputs,
    shapes: Option<ItemShapes>,
}

/// The requests waiting, one queue per client, served in turn.
pub struct Fair<R> {
    queues: std::collections::BTreeMap<usize, std::collections::VecDeque<R>>,
    /// The client served first in the next batch.
    next: usize,
}

impl<R> Default for Fair<R> {
    fn default() -> Self {
        Fair {
            queues: Default::default(),
            next: 0,
        }
    }
}

impl<R> Fair<R> {
    /// Requests waiting, over every client.
    pub fn len(&self) -> usize {
        self.queues.values().map(|q| q.len()).sum()
    }

    pub fn push(&mut self, client: usize, request: R) {
        self.queues.entry(client).or_default().push_back(request);
    }

    pub fn is_empty(&self) -> bool {
        self.queues.values().all(|q| q.is_empty())
    }

    /// Clients with a request waiting.
    pub fn waiting(&self) -> usize {
        self.queues.values().filter(|q| !q.is_empty()).count()
    }

    /// Takes requests for one batch: one from each waiting client in turn
    /// (from where the last batch stopped), round after round, until their
    /// items (`size`) reach `max_items`. A batch always has one request.
    pub fn take(&mut self, max_items: usize, size: impl Fn(&R) -> usize) -> Vec<R> {
        let mut out = Vec::new();
        let mut items = 0;
        loop {
            let order: Vec<usize> = self
                .queues
                .range(self.next..)
                .chain(self.queues.range(..self.next))
                .filter(|(_, q)| !q.is_empty())
                .map(|(c, _)| *c)
                .collect();
            if order.is_empty() {
                break;
            }
            for client in order {
                if items >= max_items && !out.is_empty() {
                    self.queues.retain(|_, q| !q.is_empty());
                    return out;
                }
                if let Some(r) = self.queues.get_mut(&client).and_then(|q| q.pop_front()) {
                    items += size(&r);
                    out.push(r);
                    // The next batch starts after the last client served.
                    self.next = client + 1;
                }
            }
        }
        self.queues.retain(|_, q| !q.is_empty());
        out
    }
}

/// A batched tensor: its name, one item's shape (unless a request gives
/// its own, [`BatchClient::submit_shaped`]), and where the batch
/// dimension goes (0 for most models; Silero's state has it second).
#[derive(Clone, Debug)]
pub struct Port {
    /// Its name in the graph (a manifest's, for models named at run time).
    pub name: std::borrow::Cow<'static, str>,
    /// One item's shape, without the batch dimension (inputs only).
    pub item_shape: Vec<usize>,
    pub batch_axis: usize,
}

impl Port {
    /// A tensor batched on its first dimension.
    pub fn first(name: impl Into<std::borrow::Cow<'static, str>>, item_shape: Vec<usize>) -> Port {
        Port {
            name: name.into(),
            item_shape,
            batch_axis: 0,
        }
    }
}

/// What the worker runs: a session, its batched inputs and outputs, and
/// inputs that are the same for every item.
pub struct BatchModel {
    /// The model's name, in errors and metrics.
    pub name: &'static str,
    pub session: Session,
    /// The CPU clocks of the session's pool threads.
    pub pool: PoolClocks,
    pub inputs: Vec<Port>,
    /// Scalar i64 inputs given as they are (Silero's sample rate).
    pub scalars: Vec<(&'static str, i64)>,
    pub outputs: Vec<Port>,
}

/// The inference worker of one model; hands out clients.
pub struct Batcher {
    tx: Sender<Request>,
    clients: Arc<AtomicUsize>,
    /// Ids handed to clients.
    ids: AtomicUsize,
    name: &'static str,
    thread: Option<JoinHandle<()>>,
}

impl Batcher {
    /// Starts the model's worker thread.
    pub fn spawn(model: BatchModel, config: BatchConfig, metrics: Arc<Metrics>) -> Result<Batcher> {
        let (tx, rx) = unbounded::<Request>();
        let clients = Arc::new(AtomicUsize::new(0));
        let name = model.name;
        let worker = Worker {
            model,
            config,
            rx,
            clients: clients.clone(),
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name(format!("infer-{name}"))
            .spawn(move || worker.run())
            .map_err(|e| Error::io("cannot start an inference thread", e))?;
        Ok(Batcher {
            tx,
            clients,
            ids: AtomicUsize::new(0),
            name,
            thread: Some(thread),
        })
    }

    /// A handle for one stream's encoder.
    pub fn client(&self) -> BatchClient {
        self.clients.fetch_add(1, Ordering::SeqCst);
        BatchClient {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            spent: Arc::new(AtomicU64::new(0)),
            tx: self.tx.clone(),
            clients: self.clients.clone(),
            name: self.name,
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // The worker ends when the last client is gone too.
        let (tx, _) = bounded(0);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One stream's way to the model's worker.
pub struct BatchClient {
    id: usize,
    spent: Arc<AtomicU64>,
    tx: Sender<Request>,
    clients: Arc<AtomicUsize>,
    name: &'static str,
}

impl BatchClient {
    /// CPU time the worker has spent on this client's items so far
    /// (its share of each batch, by items), nanoseconds.
    pub fn cpu_ns(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    /// Runs a model of one input on `items` (each of its item shape);
    /// returns each item's outputs. Blocks until the worker has run them.
    pub fn infer(&self, items: Vec<Vec<f32>>) -> Result<Vec<ItemOutputs>> {
        self.infer_each(items.into_iter().map(|i| vec![i]).collect())
    }

    /// As [`infer`](Self::infer), for models of several inputs.
    pub fn infer_each(&self, items: Vec<ItemInputs>) -> Result<Vec<ItemOutputs>> {
        self.submit(items)?.wait()
    }

    /// Hands `items` to the worker and returns at once: the caller can
    /// prepare more while the model runs, then [`Pending::wait`]s.
    pub fn submit(&self, items: Vec<ItemInputs>) -> Result<Pending> {
        self.send(items, None)
    }

    /// As [`submit`](Self::submit), for items of `shapes` (one per input)
    /// rather than the ports' own.
    pub fn submit_shaped(&self, items: Vec<ItemInputs>, shapes: ItemShapes) -> Result<Pending> {
        self.send(items, Some(shapes))
    }

    fn send(&self, items: Vec<ItemInputs>, shapes: Option<ItemShapes>) -> Result<Pending> {
        let (reply, answer) = bounded(1);
        if !items.is_empty() {
            self.tx
                .send(Request {
                    client: self.id,
                    spent: self.spent.clone(),
                    items,
                    shapes,
                    reply,
                })
                .map_err(|_| stopped(self.name))?;
        } else {
            let _ = reply.send(Ok(Vec::new()));
        }
        Ok(Pending {
            answer,
            name: self.name,
        })
    }
}

fn stopped(name: &'static str) -> Error {
    Error::Model {
        model: name.into(),
        message: "its inference worker has stopped".into(),
    }
}

/// Items handed to the worker, not yet answered.
pub struct Pending {
    answer: Receiver<Result<Vec<ItemOutputs>>>,
    name: &'static str,
}

impl Pending {
    /// Blocks until the worker has run the items; their outputs, in order.
    pub fn wait(self) -> Result<Vec<ItemOutputs>> {
        self.answer.recv().map_err(|_| stopped(self.name))?
    }
}

impl Drop for BatchClient {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Charges each client its part of `used` nanoseconds, by items.
fn share(used: u64, spent: &[Arc<AtomicU64>], counts: &[usize]) {
    let items = counts.iter().sum::<usize>().max(1) as u128;
    for (s, &n) in spent.iter().zip(counts) {
        let part = u128::from(used) * n as u128 / items;
        s.fetch_add(u64::try_from(part).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

struct Worker {
    model: BatchModel,
    config: BatchConfig,
    rx: Receiver<Request>,
    clients: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(mut self) {
        let max_batch = self.config.max_batch.max(1);
        let max_wait = Duration::from_nanos(self.config.max_wait.nanos());
        let mut waiting: Fair<Request> = Fair::default();
        let mut queued = 0usize;
        loop {
            if waiting.is_empty() {
                match self.rx.recv() {
                    Ok(r) => {
                        queued += r.items.len();
                        waiting.push(r.client, r);
                    }
                    Err(_) => break,
                }
                // Wait for more only while some other stream may still send.
                let deadline = Instant::now() + max_wait;
                while queued < max_batch && waiting.waiting() < self.clients.load(Ordering::SeqCst)
                {
                    match self.rx.recv_deadline(deadline) {
                        Ok(r) => {
                            queued += r.items.len();
                            waiting.push(r.client, r);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            // And whatever else is already queued (a stream that hands over
            // its items one by one as it prepares them).
            while let Ok(r) = self.rx.try_recv() {
                queued += r.items.len();
                waiting.push(r.client, r);
            }
            let requests = waiting.take(max_batch, |r| r.items.len());
            queued = queued.saturating_sub(requests.iter().map(|r| r.items.len()).sum());
            self.metrics
                .batch_queue(self.model.name, waiting.len() as i64);
            let counts: Vec<usize> = requests.iter().map(|r| r.items.len()).collect();
            let spent: Vec<Arc<AtomicU64>> = requests.iter().map(|r| r.spent.clone()).collect();
            let mut flat: Vec<Item> = Vec::new();
            let mut replies = Vec::with_capacity(requests.len());
            for r in requests {
                flat.extend(r.items.into_iter().map(|inputs| Item {
                    inputs,
                    shapes: r.shapes.clone(),
                }));
                replies.push(r.reply);
            }
            // What the worker did since its last batch (gathering requests)
            // is no stream's: only the run is shared out.
            let _ = cpu::since_last();
            let pool_before = self.model.pool.total_ns();
            let result = self.infer_all(flat, max_batch);
            let used = cpu::since_last()
                .saturating_add(self.model.pool.total_ns().saturating_sub(pool_before));
            share(used, &spent, &counts);
            match result {
                Ok(outputs) => {
                    let mut outputs = outputs.into_iter();
                    for (reply, n) in replies.into_iter().zip(counts) {
                        let _ = reply.send(Ok(outputs.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(Error::Model {
                            model: self.model.name.into(),
                            message: message.clone(),
                        }));
                    }
                }
            }
        }
    }

    /// Runs `items`, at most `max_batch` a run, items of one shape
    /// together; their outputs in the items' order.
    fn infer_all(&mut self, items: Vec<Item>, max_batch: usize) -> Result<Vec<ItemOutputs>> {
        let mut out: Vec<ItemOutputs> = items.iter().map(|_| Vec::new()).collect();
        for (shapes, group) in by_shape(items) {
            let mut group = group.into_iter().peekable();
            while group.peek().is_some() {
                let (at, batch): (Vec<usize>, Vec<ItemInputs>) =
                    group.by_ref().take(max_batch).unzip();
                for (i, o) in at.into_iter().zip(self.infer(batch, shapes.as_deref())?) {
                    out[i] = o;
                }
            }
        }
        Ok(out)
    }

    /// One session run over `batch` items, of `shapes` if given (else the
    /// ports' own).
    fn infer(
        &mut self,
        mut batch: Vec<ItemInputs>,
        shapes: Option<&[Vec<usize>]>,
    ) -> Result<Vec<ItemOutputs>> {
        let m = &mut self.model;
        let n = batch.len();
        let err = runtime::inference_failed(m.name);
        let mut inputs: Vec<(String, ort::value::DynValue)> = Vec::new();
        for (k, port) in m.inputs.iter().enumerate() {
            let item_shape = shapes.and_then(|s| s.get(k)).unwrap_or(&port.item_shape);
            let per_item: usize = item_shape.iter().product();
            if let Some(bad) = batch
                .iter()
                .find(|i| i.get(k).map_or(0, Vec::len) != per_item)
            {
                return Err(Error::Model {
                    model: m.name.into(),
                    message: format!(
                        "input `{}`: an item of {} values, the model takes {per_item}",
                        port.name,
                        bad.get(k).map_or(0, Vec::len)
                    ),
                });
            }
            let axis = port.batch_axis.min(item_shape.len());
            let mut shape = item_shape.clone();
            shape.insert(axis, n);
            let inner: usize = item_shape[axis..].iter().product();
            let outer = per_item / inner.max(1);
            let data = if n == 1 {
                // One item is already the tensor: no copy.
                std::mem::take(&mut batch[0][k])
            } else {
                let mut data = Vec::with_capacity(per_item * n);
                for o in 0..outer {
                    for item in &batch {
                        data.extend_from_slice(&item[k][o * inner..(o + 1) * inner]);
                    }
                }
                data
            };
            let tensor = Tensor::from_array((shape, data)).map_err(err)?;
            inputs.push((port.name.to_string(), tensor.into_dyn()));
        }
        for (name, v) in &m.scalars {
            let tensor = Tensor::from_array(((), vec![*v])).map_err(err)?;
            inputs.push((name.to_string(), tensor.into_dyn()));
        }
        let started = Instant::now();
        let outputs = m.session.run(inputs).map_err(err)?;
        let mut items: Vec<ItemOutputs> = (0..n)
            .map(|_| Vec::with_capacity(m.outputs.len()))
            .collect();
        for port in &m.outputs {
            let value = outputs.get(&*port.name).ok_or_else(|| Error::Model {
                model: m.name.into(),
                message: format!("no output `{}`", port.name),
            })?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
            let axis = port.batch_axis.min(shape.len().saturating_sub(1));
            if shape.get(axis).copied() != Some(n as i64) {
                return Err(Error::Model {
                    model: m.name.into(),
                    message: format!(
                        "output `{}` has shape {shape:?}, not a batch of {n} on axis {axis}",
                        port.name
                    ),
                });
            }
            let inner: usize = shape[axis + 1..]
                .iter()
                .map(|&d| d.max(0) as usize)
                .product();
            let outer = data.len() / (inner * n).max(1);
            for (b, item) in items.iter_mut().enumerate() {
                let mut v = Vec::with_capacity(outer * inner);
                for o in 0..outer {
                    let at = (o * n + b) * inner;
                    v.extend_from_slice(&data[at..at + inner]);
                }
                item.push(v);
            }
        }
        self.metrics
            .batch_run(m.name, n, started.elapsed().as_secs_f64());
        Ok(items)
    }
}

/// Items of one shape, each with its place among all the items.
type Group = (Option<ItemShapes>, Vec<(usize, ItemInputs)>);

/// Items grouped by shape, each group in the items' order, the groups in
/// the order their first item came.
fn by_shape(items: Vec<Item>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match groups.iter_mut().find(|(s, _)| *s == item.shapes) {
            Some((_, group)) => group.push((i, item.inputs)),
            None => groups.push((item.shapes, vec![(i, item.inputs)])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Fair, Item, ItemShapes, by_shape};

    #[test]
    fn items_of_one_shape_run_together_and_keep_their_places() {
        let big: ItemShapes = Arc::from(vec![vec![3, 416, 416]]);
        let small: ItemShapes = Arc::from(vec![vec![3, 320, 320]]);
        let item = |v: f32, shapes: &Option<ItemShapes>| Item {
            inputs: vec![vec![v]],
            shapes: shapes.clone(),
        };
        let (b, s, none) = (Some(big.clone()), Some(small.clone()), None);
        let items = vec![
            item(0.0, &b),
            item(1.0, &s),
            item(2.0, &b),
            item(3.0, &none),
            item(4.0, &s),
        ];
        let groups: Vec<(Option<ItemShapes>, Vec<usize>)> = by_shape(items)
            .into_iter()
            .map(|(shape, g)| {
                for (i, inputs) in &g {
                    assert_eq!(inputs[0][0], *i as f32, "item {i} carries its own inputs");
                }
                (shape, g.into_iter().map(|(i, _)| i).collect())
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                (Some(big), vec![0, 2]),
                (Some(small), vec![1, 4]),
                (None, vec![3]),
            ]
        );
    }

    /// (client, item count) of what a batch took.
    fn take(f: &mut Fair<(usize, usize)>, max: usize) -> Vec<usize> {
        f.take(max, |r| r.1).into_iter().map(|r| r.0).collect()
    }

    #[test]
    fn a_busy_stream_does_not_hold_back_a_quiet_one() {
        let mut f = Fair::default();
        // Camera 0 queued 12 frames before camera 1 queued its one.
        for _ in 0..12 {
            f.push(0, (0, 1));
        }
        f.push(1, (1, 1));
        assert_eq!(take(&mut f, 4), [0, 1, 0, 0], "1 goes in the first batch");
        assert_eq!(f.len(), 9);
        f.push(2, (2, 1));
        f.push(1, (1, 1));
        // The next batch starts after the last served: 1, 2, then 0 again.
        assert_eq!(take(&mut f, 4), [1, 2, 0, 0]);
        assert_eq!(take(&mut f, 4), [0, 0, 0, 0]);
        assert_eq!(take(&mut f, 4), [0, 0, 0]);
        assert!(f.is_empty());
        assert!(take(&mut f, 4).is_empty());
    }

    #[test]
    fn every_stream_gets_its_turn_under_overload() {
        // Three streams keep 8 requests each waiting; over many batches each
        // gets a third of the model's runs.
        let mut f = Fair::default();
        let mut served = [0usize; 3];
        for _ in 0..300 {
            for c in 0..3 {
                while f.queues.get(&c).map_or(0, |q| q.len()) < 8 {
                    f.push(c, (c, 1));
                }
            }
            for c in take(&mut f, 4) {
                served[c] += 1;
            }
        }
        assert_eq!(served.iter().sum::<usize>(), 1200);
        for s in served {
            assert_eq!(s, 400, "{served:?}");
        }
    }

    #[test]
    fn a_request_bigger_than_a_batch_goes_alone() {
        let mut f = Fair::default();
        f.push(0, (0, 10));
        f.push(1, (1, 1));
        assert_eq!(take(&mut f, 4), [0]);
        assert_eq!(take(&mut f, 4), [1]);
    }
}
