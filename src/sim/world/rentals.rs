//! The rental contracts on a machine: starting, pausing, resuming, ending and preempting them,
//! and which GPUs each one holds. Must not build rows or answer requests.

use super::{epoch_now, Rental, SimMachine, World};
use crate::sim::spec::{GpuSelect, RentalKind, SimError};

impl World {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
        gpus: GpuSelect,
        kind: RentalKind,
        disk_gb: f64,
        hours: Option<f64>,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        if machine.rentals.iter().any(|r| r.name == rental) {
            return Err(SimError::DuplicateRental {
                machine: machine_id,
                rental: rental.into(),
            });
        }
        let gpus = machine.pick_gpus(&gpus)?;
        machine.rentals.push(Rental {
            name: rental.to_string(),
            kind,
            gpus,
            disk_gb: disk_gb.max(0.0),
            running: true,
            end_date: (epoch_now() + hours.unwrap_or(72.0) * 3600.0).floor(),
        });
        Ok(())
    }

    pub(crate) fn pause_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let r = machine.rental_mut(rental)?;
        if !r.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: rental.into(),
                action: "pause",
                why: "it is already paused",
            });
        }
        r.running = false;
        Ok(())
    }

    pub(crate) fn resume_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let r = machine.rental(rental)?;
        if r.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: rental.into(),
                action: "resume",
                why: "it is running",
            });
        }
        // A stored contract is bound to its GPUs: it resumes on the same ones or not at all.
        for gpu in r.gpus.clone() {
            if let Some(holder) = machine.running_holder(gpu) {
                return Err(SimError::GpuBusy {
                    machine: machine_id,
                    gpu,
                    holder: holder.to_string(),
                });
            }
        }
        machine.rental_mut(rental)?.running = true;
        Ok(())
    }

    pub(crate) fn end_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        machine.rental(rental)?;
        machine.rentals.retain(|r| r.name != rental);
        Ok(())
    }

    /// A running interruptible loses its GPUs to a new rental in one step (the tokens flip
    /// `I`->`D` without passing through `x`); it keeps its storage and becomes stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn preempt(
        &mut self,
        account: &str,
        machine_id: u64,
        interruptible: &str,
        by: &str,
        kind: RentalKind,
        disk_gb: f64,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let victim = machine.rental(interruptible)?;
        if victim.kind != RentalKind::Interruptible || !victim.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: interruptible.into(),
                action: "be preempted",
                why: "only a running interruptible rental can be preempted",
            });
        }
        if machine.rentals.iter().any(|r| r.name == by) {
            return Err(SimError::DuplicateRental {
                machine: machine_id,
                rental: by.into(),
            });
        }
        let gpus = victim.gpus.clone();
        machine.rental_mut(interruptible)?.running = false;
        machine.rentals.push(Rental {
            name: by.to_string(),
            kind,
            gpus,
            disk_gb: disk_gb.max(0.0),
            running: true,
            end_date: (epoch_now() + 72.0 * 3600.0).floor(),
        });
        Ok(())
    }
}

impl SimMachine {
    fn rental(&self, name: &str) -> Result<&Rental, SimError> {
        self.rentals
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| SimError::UnknownRental {
                machine: self.spec.id,
                rental: name.into(),
            })
    }

    fn rental_mut(&mut self, name: &str) -> Result<&mut Rental, SimError> {
        let machine = self.spec.id;
        self.rentals
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| SimError::UnknownRental {
                machine,
                rental: name.into(),
            })
    }

    pub(super) fn running_rental_on(&self, gpu: u32) -> Option<&Rental> {
        self.rentals
            .iter()
            .find(|r| r.running && r.gpus.contains(&gpu))
    }

    fn running_holder(&self, gpu: u32) -> Option<&str> {
        self.running_rental_on(gpu).map(|r| r.name.as_str())
    }

    /// GPUs for a new rental: the given ones if none is running another rental, or the first
    /// `n` free ones, preferring GPUs no stored contract is bound to.
    fn pick_gpus(&self, select: &GpuSelect) -> Result<Vec<u32>, SimError> {
        let machine = self.spec.id;
        let num_gpus = self.spec.num_gpus;
        match select {
            GpuSelect::Indices(gpus) => {
                for &gpu in gpus {
                    if gpu >= num_gpus {
                        return Err(SimError::NoSuchGpu {
                            machine,
                            gpu,
                            num_gpus,
                        });
                    }
                    if let Some(holder) = self.running_holder(gpu) {
                        return Err(SimError::GpuBusy {
                            machine,
                            gpu,
                            holder: holder.into(),
                        });
                    }
                }
                let mut gpus = gpus.clone();
                gpus.sort_unstable();
                gpus.dedup();
                Ok(gpus)
            }
            GpuSelect::Count(n) => {
                let free: Vec<u32> = (0..num_gpus)
                    .filter(|g| self.running_rental_on(*g).is_none())
                    .collect();
                let bound = |g: &u32| {
                    self.rentals
                        .iter()
                        .any(|r| !r.running && r.gpus.contains(g))
                };
                let mut ordered: Vec<u32> = free.iter().copied().filter(|g| !bound(g)).collect();
                ordered.extend(free.iter().copied().filter(|g| bound(g)));
                if ordered.len() < *n as usize {
                    return Err(SimError::NotEnoughGpus {
                        machine,
                        free: ordered.len() as u32,
                        wanted: *n,
                    });
                }
                let mut gpus: Vec<u32> = ordered.into_iter().take(*n as usize).collect();
                gpus.sort_unstable();
                Ok(gpus)
            }
        }
    }
}
